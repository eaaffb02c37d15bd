"""Which site a WebSocket handshake comes from. Browsers send cookies with cross-site WebSocket handshakes,
so every socket that acts on a session (the room channel, the lobby) first checks that the handshake's
``Origin`` is this site: the ``Host`` it was sent to, or ``PUBLIC_URL`` behind a proxy."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from web.services import services


def same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: it carries no one else's cookies
    host = websocket.headers.get("host", "")
    public = services(websocket).settings.public_url
    return urlsplit(origin).netloc == host or (public is not None and origin == public)
