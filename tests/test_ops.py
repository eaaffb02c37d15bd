"""Health, metrics, request ids and structured logs."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from starlette.applications import Starlette

from store.db import create_engine
from web.logs import configure_logging
from web.services import services


async def test_healthz_checks_the_database(app: Starlette, client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    await services(app).engine.dispose()
    # A database server that is not there (nothing listens on port 1); asyncpg fails fast, with no threads.
    services(app).engine = create_engine("postgresql://tsunagu@127.0.0.1:1/tsunagu")
    broken = await client.get("/healthz")
    assert broken.status_code == 503 and broken.json()["status"] == "error"
    await services(app).engine.dispose()


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'tsunagu_http_requests_total{method="GET",route="/",status="200"}' in response.text


async def test_each_request_gets_an_id_and_one_json_log_line(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    try:
        response = await client.get("/healthz", headers={"x-request-id": "req-123"})
        assert response.headers["x-request-id"] == "req-123"
        generated = (await client.get("/healthz")).headers["x-request-id"]
        assert len(generated) == 32
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
        requests = [line for line in lines if line.get("event") == "request"]
        assert {"req-123", generated} <= {line["request_id"] for line in requests}
        assert all(line["path"] == "/healthz" and line["status"] == 200 for line in requests)
    finally:
        logging.getLogger().handlers = []


async def test_unknown_page_is_a_translated_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page")
    assert response.status_code == 404 and "見つかりません" in response.text
    api = await client.get("/api/nothing")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
