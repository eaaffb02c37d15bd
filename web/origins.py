"""Which site a WebSocket handshake comes from. Browsers send cookies with cross-site WebSocket handshakes,
so every socket that acts on a session (the room channel, the lobby) first checks that the handshake's
``Origin`` is this site: the ``Host`` it was sent to, or ``PUBLIC_URL`` behind a proxy."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from signaling.protocol import SUBPROTOCOL, CloseCode
from web.services import services


def same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: it carries no one else's cookies
    host = websocket.headers.get("host", "")
    public = services(websocket).settings.public_url
    return urlsplit(origin).netloc == host or (public is not None and origin == public)


async def accept_room_socket(websocket: WebSocket) -> bool:
    """The handshake of a socket on a room's channel (a participant's or a sitting-in manager's): refused
    outright (HTTP 403) when cross-site; accepted, then closed with a close code a browser can read, without
    the channel's subprotocol. True when accepted for the channel."""
    if not same_origin(websocket):
        await websocket.close(int(CloseCode.NOT_ALLOWED))
        return False
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
        await websocket.accept()
        await websocket.close(int(CloseCode.UNSUPPORTED_PROTOCOL))
        return False
    await websocket.accept(subprotocol=SUBPROTOCOL)
    return True
