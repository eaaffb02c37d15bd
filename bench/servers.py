"""The servers a bench measures: the app on uvicorn in this process, and beside it a bare WebSocket echo,
the baseline every latency is set against (the same network hops, none of the app's work)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from store.migrate import upgrade
from tests.harness.live import LiveServer
from web.app import create_app
from web.logs import configure_logging
from web.settings import Settings


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        return


@contextlib.asynccontextmanager
async def app_and_echo(per_message_deflate: bool = False) -> AsyncIterator[tuple[LiveServer, str]]:
    """The app (fresh SQLite database in a temporary folder) and the echo endpoint's ws:// URL;
    ``per_message_deflate``: both accept WebSocket compression (``tsunagu serve`` declines it)."""
    configure_logging("console", "warning")  # keep the server's request lines out of the figures
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'bench.db'}",
            secret_key=secrets.token_hex(32),
            # The benches send frames back to back to time them, far faster than a person; the room
            # channel's per-connection limit (60 a second) is not what they measure.
            room_messages_per_second=100_000,
            room_message_burst=100_000,
        )
        await asyncio.to_thread(upgrade, settings.database_url)
        app_server = LiveServer(create_app(settings), per_message_deflate=per_message_deflate)
        echo_server = LiveServer(
            Starlette(routes=[WebSocketRoute("/echo", echo)]), per_message_deflate=per_message_deflate
        )
        app_server.start()
        echo_server.start()
        try:
            yield app_server, echo_server.url.replace("http", "ws") + "/echo"
        finally:
            echo_server.stop()
            app_server.stop()
