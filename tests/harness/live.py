"""The app served by uvicorn on a free loopback port, in a thread of the test process, exactly as
``tsunagu serve`` serves it: the same uvicorn configuration and event loop (``web.serving``).

Running in-process lets a test reach into the app (its clock, its state) while a real browser talks to it
over real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

import uvicorn
from starlette.applications import Starlette

from tests.harness.ports import free_port, wait_for_port
from web import serving

T = TypeVar("T")


class Served(Protocol):
    """A running server a browser can open: this in-process one, or ``tsunagu serve`` in a subprocess."""

    @property
    def url(self) -> str: ...


class LiveServer:
    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
        per_message_deflate: bool = serving.PER_MESSAGE_DEFLATE,
    ) -> None:
        """``tls``: (certificate, key) to serve HTTPS with, as ``tsunagu serve --certfile/--keyfile`` does;
        ``per_message_deflate``: accept WebSocket compression (a bench comparing it; ``tsunagu serve``
        declines it)."""
        self.app = app
        self.host = host
        self.port = port or free_port()  # a given port: a restarted server where the pages expect it
        self.tls = tls
        config = serving.config(app, host, self.port, tls=tls, per_message_deflate=per_message_deflate)
        self.server = uvicorn.Server(config)
        self._loop_factory = config.get_loop_factory()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._serve, name="live-server", daemon=True)

    def _serve(self) -> None:
        # What uvicorn's Server.run() does, in this thread: a Runner over the configured loop factory.
        with asyncio.Runner(loop_factory=self._loop_factory) as runner:
            self._loop = runner.get_loop()
            runner.run(self.server.serve())

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the server has not started"
        return self._loop

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> None:
        self.thread.start()
        wait_for_port(self.port, host=self.host)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's own event loop (its database engine lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)  # a server still draining a backlog keeps its (daemon) thread
