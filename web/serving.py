"""How the app is served: the event loop and uvicorn's configuration, in one place for ``tsunagu serve``, the
test harness (``tests/harness/live.py``) and the benches, so that what the tests run is what users run.

The loop is chosen here on purpose rather than left to uvicorn's ``auto`` (which takes uvloop whenever it is
installed): uvloop, measured in ``bench/relay.py`` against asyncio's selector loop (see docs/deploy.md, "The
event loop"). ``media.hooks`` is written for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import uvicorn
from starlette.types import ASGIApp

Loop = Literal["uvloop", "asyncio"]
LOOP: Final[Loop] = "uvloop"


def config(
    app: ASGIApp,
    host: str,
    port: int,
    tls: tuple[Path, Path | None] | None = None,
    loop: Loop = LOOP,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` on ``host:port``; ``tls``: (certificate, key) to serve HTTPS with.
    Logging is ours (``web.logs``): uvicorn's own configuration and access log are off."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        lifespan="on",
        log_config=None,
        access_log=False,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls and tls[1] else None,
    )


def loop_factory(loop: Loop = LOOP) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop ``tsunagu serve`` runs on (for code that runs without uvicorn: benches)."""
    factory = uvicorn.Config(_nothing, loop=loop).get_loop_factory()
    assert factory is not None  # only loop="none" has none
    return factory


def serve(server_config: uvicorn.Config) -> None:
    """Run the server until it is told to stop (SIGINT/SIGTERM), on its configured loop."""
    uvicorn.Server(server_config).run()


async def _nothing(scope: object, receive: object, send: object) -> None:  # an app for a loop-only Config
    return None
