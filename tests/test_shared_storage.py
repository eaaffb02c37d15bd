"""Two nodes, one S3 bucket (a real S3 server), one database: what one node stores, the other serves — a
document uploaded and rendered on node A is shown page by page from node B, a file sent through node A is
downloaded (with Range) from node B — and neither node's own disk holds the bytes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from core.clock import ManualClock
from store.models import Role
from tests.conftest import make_client, storage_url_for
from tests.harness import pdfs
from tests.helpers import csrf_from, csrf_token, seed_org, sign_in
from web.app import create_app
from web.settings import Settings

MB = 1024 * 1024


@pytest.fixture
def storage_url(request: pytest.FixtureRequest) -> str | None:
    return storage_url_for(request, "s3")


@pytest.fixture
async def two_nodes(settings: Settings, clock: ManualClock, tmp_path: Path) -> AsyncIterator[list[Starlette]]:
    """Node A (the usual settings) and node B: its own data folder, the same database, bucket and secret."""
    other = replace(settings, data_dir=tmp_path / "data-b")
    other.data_dir.mkdir()
    node_a, node_b = create_app(settings, clock=clock), create_app(other, clock=clock)
    async with node_a.router.lifespan_context(node_a), node_b.router.lifespan_context(node_b):
        yield [node_a, node_b]
    for data_dir in (settings.data_dir, other.data_dir):  # the bytes were in the bucket, not on either box
        assert not [path for path in data_dir.rglob("*") if path.is_file() and "files" in path.parts]
        assert not (data_dir / "documents").exists()


async def ready(client: httpx.AsyncClient, doc_id: int, within: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        document: dict[str, object] = (await client.get(f"/api/documents/{doc_id}")).json()
        if document["status"] != "processing":
            return document
        await asyncio.sleep(0.05)
    raise AssertionError(f"document {doc_id} still processing after {within} s")


async def test_what_one_node_stores_the_other_serves(two_nodes: list[Starlette]) -> None:
    node_a, node_b = two_nodes
    await seed_org(node_a, "acme", {"host@acme.example": Role.HOST})
    async with make_client(node_a) as host_a, make_client(node_b) as host_b, make_client(node_a) as guest:
        await sign_in(host_a, "host@acme.example")
        host_b.cookies = host_a.cookies  # one sign-in, whichever node the balancer picks (sessions are rows)
        csrf = await csrf_token(host_a, "/documents")

        # A document: uploaded to and rendered by node A, its pages served by node B.
        uploaded = await host_a.post(
            "/api/documents",
            params={"name": "会社案内.pdf"},
            content=pdfs.text_pdf(pages=3, size=pdfs.A4_LANDSCAPE),
            headers={
                "X-CSRF-Token": csrf,
                "Content-Type": "application/octet-stream",
                "Accept": "application/json",
            },
        )
        assert uploaded.status_code == 202, uploaded.text
        doc_id = uploaded.json()["id"]
        assert (await ready(host_a, doc_id))["status"] == "ready"
        for n in (1, 2, 3):
            on_a = await host_a.get(f"/documents/{doc_id}/pages/{n}.jpg")
            on_b = await host_b.get(f"/documents/{doc_id}/pages/{n}.jpg")
            assert on_a.status_code == on_b.status_code == 200
            assert on_b.content == on_a.content and on_b.headers["etag"] == on_a.headers["etag"]
        assert (await host_b.get(f"/documents/{doc_id}/thumbs/1.jpg")).status_code == 200

        # A file sent by the guest through node A (more than one S3 part), fetched by the host from node B.
        guest_csrf = csrf_from((await guest.get("/")).text)
        json_headers = {"X-CSRF-Token": guest_csrf, "Accept": "application/json"}
        number = (await guest.post("/api/numbers", json={}, headers=json_headers)).json()["number"]
        host_csrf = csrf_from((await host_a.get("/host")).text)
        created = await host_a.post(
            "/api/rooms",
            json={"number": number},
            headers={"X-CSRF-Token": host_csrf, "Accept": "application/json"},
        )
        room_id = created.json()["room_id"]
        data = os.urandom(6 * MB)
        sent = await guest.post(
            f"/api/rooms/{room_id}/files", params={"name": "見積書.bin"}, content=data, headers=json_headers
        )
        assert sent.status_code == 201, sent.text
        url = f"/rooms/{room_id}/files/{sent.json()['id']}"
        whole = await host_b.get(url)
        assert whole.status_code == 200 and whole.content == data
        part = await host_b.get(url, headers={"Range": "bytes=5242000-5243999"})
        assert part.status_code == 206 and part.content == data[5242000:5244000]
        assert part.headers["content-range"] == f"bytes 5242000-5243999/{len(data)}"
