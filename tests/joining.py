"""Drive the joining flow over real sockets: a guest browser and a host, as HTTP and WebSocket clients."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import PASSWORD, csrf_from
from web.settings import Settings


class Browser:
    """One browser's cookies against a live server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        # Generous: a sign-in (argon2) on a 2-core box loaded by the rest of the suite can take seconds.
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)
        self.csrf = ""

    async def open(self, path: str) -> httpx.Response:
        response = await self.http.get(path)
        if 'name="csrf_token"' in response.text:
            self.csrf = csrf_from(response.text)
        return response

    async def post_json(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(
            path, json=body or {}, headers={"X-CSRF-Token": self.csrf, "Accept": "application/json"}
        )

    async def sign_in(self, email: str, password: str = PASSWORD) -> None:
        await self.open("/login")
        response = await self.http.post(
            "/login", data={"email": email, "password": password, "csrf_token": self.csrf}
        )
        assert response.status_code == 303, response.text
        await self.open("/host")

    def websocket(self, path: str, subprotocols: list[str] | None = None, origin: str | None = None) -> Any:
        cookie = "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())
        return connect(
            self.base_url.replace("http", "ws") + path,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
            origin=origin or self.base_url,  # type: ignore[arg-type]
            open_timeout=15,
        )

    async def aclose(self) -> None:
        await self.http.aclose()


async def receive(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    import asyncio

    return json.loads(await asyncio.wait_for(ws.recv(), within))  # type: ignore[no-any-return]


async def receive_type(ws: ClientConnection, kind: str, within: float = 5.0) -> dict[str, Any]:
    """Skip frames until one of ``kind`` arrives (bounded by ``within`` seconds per frame and 50 frames)."""
    for _ in range(50):
        frame = await receive(ws, within)
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


async def until(ws: ClientConnection, kind: str, within: float = 5.0, **fields: Any) -> dict[str, Any]:
    """Skip frames until one of ``kind`` with these field values arrives (bounded like receive_type)."""
    for _ in range(50):
        frame = await receive_type(ws, kind, within)
        if all(frame.get(key) == value for key, value in fields.items()):
            return frame
    raise AssertionError(f"no {kind} frame with {fields}")


BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


def on_backend(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """``settings`` for the backend a fixture parametrized with :data:`BACKENDS` is on: in-process, or a
    freshly emptied real redis-server."""
    if request.param == "memory":
        return settings
    server = request.getfixturevalue("redis_server")
    with redis.Redis.from_url(server.url) as client:
        client.flushdb()
    return replace(settings, redis_url=server.url)
