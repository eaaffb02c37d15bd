"""The servers a bench measures: the app on uvicorn in this process, and beside it a bare WebSocket echo,
the baseline every latency is set against (the same network hops, none of the app's work), and a bare relay
between the two sockets of a pair (what a room's hand-off from one socket to the other costs by itself)."""

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


class _Relay:
    """``/relay/{pair}``: the sockets that name the same pair get each other's frames. Each socket has a
    reader, a writer task and a queue between them, as a room's socket has (web/meetings.py), and nothing
    else: no validation, state machine or storage. What that hand-off costs beside the echo is the floor
    under what a room's keystroke can cost (bench.memo's ``relay_server_cpu_us_per_message``)."""

    def __init__(self) -> None:
        self.pairs: dict[str, list[asyncio.Queue[str]]] = {}

    async def relay(self, websocket: WebSocket) -> None:
        await websocket.accept()
        mine: asyncio.Queue[str] = asyncio.Queue()  # a bench's frames are bounded by its duration
        pair = self.pairs.setdefault(websocket.path_params["pair"], [])
        pair.append(mine)

        async def write() -> None:
            while True:
                await websocket.send_text(await mine.get())

        writer = asyncio.create_task(write())
        try:
            while True:
                text = await websocket.receive_text()
                for queue in pair:
                    if queue is not mine:
                        queue.put_nowait(text)
        except WebSocketDisconnect:
            return
        finally:
            writer.cancel()
            pair.remove(mine)


def baselines() -> Starlette:
    """The bare endpoints the app's figures are set against: ``/echo`` and ``/relay/{pair}``."""
    return Starlette(routes=[WebSocketRoute("/echo", echo), WebSocketRoute("/relay/{pair}", _Relay().relay)])


@contextlib.asynccontextmanager
async def app_and_echo(per_message_deflate: bool = False) -> AsyncIterator[tuple[LiveServer, str]]:
    """The app (fresh SQLite database in a temporary folder) and the echo endpoint's ws:// URL (the relay's
    pairs are beside it, ``…/relay/{pair}``);
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
        echo_server = LiveServer(baselines(), per_message_deflate=per_message_deflate)
        app_server.start()
        echo_server.start()
        try:
            yield app_server, echo_server.url.replace("http", "ws") + "/echo"
        finally:
            echo_server.stop()
            app_server.stop()
