"""The app served by uvicorn on a free loopback port, in a thread of the test process.

Running in-process lets a test reach into the app (its clock, its state) while a real browser talks to it
over real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from tests.harness.ports import free_port, wait_for_port

T = TypeVar("T")


class LiveServer:
    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: (certificate, key) to serve HTTPS with, as ``tsunagu serve --certfile/--keyfile`` does."""
        self.app = app
        self.host = host
        self.port = port or free_port()  # a given port: a restarted server where the pages expect it
        self.tls = tls
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=self.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                ssl_certfile=str(tls[0]) if tls else None,
                ssl_keyfile=str(tls[1]) if tls else None,
            )
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="live-server", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

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
        self.thread.join(timeout=10)
        if not self.thread.is_alive():  # a server still draining a backlog keeps its (daemon) thread
            self.loop.close()
