"""How the app is served: the event loop and uvicorn's configuration, in one place for ``tsunagu serve``, the
test harness (``tests/harness/live.py``) and the benches, so that what the tests run is what users run.

The loop is chosen here on purpose rather than left to uvicorn's ``auto`` (which takes uvloop whenever it is
installed): uvloop, measured in ``bench/relay.py`` against asyncio's selector loop (see docs/deploy.md, "The
event loop"). ``media.hooks`` is written for both.

WebSockets are served by :class:`web.direct_socket.DirectProtocol`: uvicorn's sans-I/O protocol, with a
direct path the room channel's memo frames take (an app that does not ask for it is served as by uvicorn's).

WebSocket compression is declined (``PER_MESSAGE_DEFLATE``): browsers offer permessage-deflate on every
socket, uvicorn accepts it by default, and every channel here (room, sit-in, lobby) carries small JSON frames
that then cost more to compress than to send (docs/deploy.md, "WebSocket compression").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import uvicorn
from starlette.types import ASGIApp

from web.direct_socket import DirectProtocol

Loop = Literal["uvloop", "asyncio"]
LOOP: Final[Loop] = "uvloop"
# Measured with bench.memo (bench/README.md): deflate added ~20 µs of server CPU per echo message and 20–60 µs
# per keystroke, and compresses frames of a few hundred bytes by little.
PER_MESSAGE_DEFLATE: Final = False


def config(
    app: ASGIApp,
    host: str,
    port: int,
    tls: tuple[Path, Path | None] | None = None,
    loop: Loop = LOOP,
    per_message_deflate: bool = PER_MESSAGE_DEFLATE,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` on ``host:port``; ``tls``: (certificate, key) to serve HTTPS with.
    Logging is ours (``web.logs``): uvicorn's own configuration and access log are off.
    ``per_message_deflate``: accept WebSocket compression (only benches comparing the two set it)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        lifespan="on",
        log_config=None,
        access_log=False,
        ws=DirectProtocol,
        ws_per_message_deflate=per_message_deflate,
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
