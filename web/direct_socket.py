"""The WebSocket protocol the app is served with: uvicorn's sans-I/O WebSocket protocol, plus a direct path
for the room channel's frames that both the frame's arrival and the peer's copy of it can take without a
task switch.

Through ASGI a keystroke costs, before any of the memo's work: the frame queued for the reading task (and
the socket's reading paused and resumed around it), that task woken, the peer's copy queued for the peer's
writing task, that task woken, and both frames passed through every middleware as ASGI dicts. A bare echo
pays half of that. With this protocol a socket's ASGI scope carries a :class:`DirectSocket` under
``scope["extensions"][EXTENSION]``; the app may then

- :meth:`DirectSocket.on_text`: be handed each text message as soon as it is read, in the protocol's own
  callback, whenever nothing is waiting in the ASGI queue (so it is in order with what went that way). The
  handler returns False to let the message go through ASGI as usual; and
- :meth:`DirectSocket.send_text_now`: write a text frame at once, without awaiting, when the socket can
  take it now (False: send it through ASGI, which waits while the peer's buffer is full).

Everything else (the handshake, closes, pings, binary frames, backpressure) is uvicorn's, unchanged; an app
that never asks for the extension (the benches' echo) is served exactly as by uvicorn's own protocol.
bench.memo measures what the direct path saves (bench/README.md).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask  # websockets' own C unmasking, as its reader uses
except ImportError:  # pragma: no cover - a websockets built without it
    from websockets.utils import apply_mask

log = structlog.get_logger("tsunagu.sockets")

EXTENSION: Final = "tsunagu.direct"
INTERNAL_ERROR: Final = 1011
_FIN_TEXT: Final = 0x81  # FIN, text opcode
_MASKED: Final = 0x80
_BIG: Final = 1 << 16  # frames this long or longer are left to websockets

TextHandler = Callable[[str], bool]


@dataclass
class DirectCounts:
    """What took the direct path in this process (for tests and metrics)."""

    taken: int = 0  # text messages a handler took as they were read
    written: int = 0  # frames written at once


COUNTS = DirectCounts()


class DirectSocket:
    """One socket's direct path (see the module's docstring)."""

    def __init__(self, protocol: DirectProtocol) -> None:
        self._protocol = protocol
        self.handler: TextHandler | None = None

    def on_text(self, handler: TextHandler | None) -> None:
        """Hand text messages to ``handler`` as they are read (None: stop)."""
        self.handler = handler

    def send_text_now(self, text: str) -> bool:
        """Write ``text`` as a frame now; False when the socket cannot take it at once (not open, closing,
        or its write buffer full): then it must go through ASGI's send, behind nothing sent directly."""
        protocol = self._protocol
        if (
            not protocol.handshake_complete
            or protocol.close_sent
            or protocol.disconnected
            or protocol.initial_response is not None
            or not protocol.writable.is_set()
            or protocol.conn.state is not State.OPEN
            or protocol.transport.is_closing()
        ):
            return False
        conn = protocol.conn
        if conn.extensions or conn.expect_continuation_frame or conn.writes:
            try:  # websockets frames it (compression negotiated, say)
                conn.send_text(text.encode())
            except InvalidState:
                return False
            protocol.transport.write(b"".join(conn.data_to_send()))
        else:
            # A server's text frame is a header and the payload as it is: framed here, without websockets'
            # Frame object and its checks (an eighth of a keystroke's CPU in the profile, bench/README.md).
            protocol.transport.write(text_frame(text.encode()))
        COUNTS.written += 1
        return True


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455, 5.2), as a server sends it."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", _FIN_TEXT, 126, length) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, length) + payload


class DirectProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with a :class:`DirectSocket` in every socket's scope."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct = DirectSocket(self)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # set when the handshake went on to the app
            scope["extensions"][EXTENSION] = self.direct

    def data_received(self, data: bytes) -> None:
        """Whole masked text frames at the start of ``data`` are read here, when websockets' reader holds
        nothing and expects no continuation; from the first frame that is anything else (a control frame,
        a fragment, a frame cut by the read, a big one) on, websockets reads the rest as always."""
        conn = self.conn
        if (
            self.direct.handler is None
            or conn.state is not State.OPEN
            or conn.reader.buffer
            or conn.expect_continuation_frame
            or conn.extensions
        ):
            super().data_received(data)
            return
        offset, end = 0, len(data)
        limit = conn.max_message_size or _BIG
        while offset < end and not self.close_sent:
            frame = _whole_text_frame(data, offset, limit)
            if frame is None:
                break
            offset, payload = frame
            self.curr_msg_data_type = "text"
            self.frames = [payload]
            self.send_receive_event_to_app()
        if offset < end and not self.close_sent:
            super().data_received(data[offset:] if offset else data)

    def send_receive_event_to_app(self) -> None:
        handler = self.direct.handler
        if (
            handler is None
            or self.curr_msg_data_type != "text"
            or self.close_sent
            or not self.queue.empty()  # something is still on its way through ASGI: this goes behind it
        ):
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            super().send_receive_event_to_app()  # uvicorn closes with 1007
            return
        try:
            taken = handler(text)
        except Exception:
            # As a failing ASGI app would: this socket ends (1011), the server and every other socket go on.
            log.exception("socket.direct_handler_failed")
            self.direct.handler = None
            self.frames = []
            self.conn.fail(INTERNAL_ERROR)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.queue.put_nowait({"type": "websocket.disconnect", "code": INTERNAL_ERROR})
            self.close_sent = True
            self.transport.close()
            return
        if taken:
            self.frames = []
            COUNTS.taken += 1
        else:
            super().send_receive_event_to_app()


def _whole_text_frame(data: bytes, offset: int, limit: int) -> tuple[int, bytes] | None:
    """The client's text frame at ``offset`` if it is whole in ``data``, unfragmented, masked (as a client's
    must be), without reserved bits and under 64 KiB and ``limit``: (where the next frame starts, the
    unmasked payload)."""
    if len(data) - offset < 6 or data[offset] != _FIN_TEXT:
        return None
    second = data[offset + 1]
    if not second & _MASKED:
        return None  # websockets refuses it (1002)
    length = second & 0x7F
    start = offset + 2
    if length == 126:
        length = int.from_bytes(data[start : start + 2], "big")
        start += 2
    elif length == 127:
        return None
    if length > limit:
        return None  # websockets refuses it (1009)
    payload_start = start + 4
    stop = payload_start + length
    if stop > len(data):
        return None
    return stop, apply_mask(data[payload_start:stop], data[start:payload_start])


def direct_socket(scope: Any) -> DirectSocket | None:
    """The socket's direct path, when it is served by :class:`DirectProtocol`."""
    found = scope.get("extensions", {}).get(EXTENSION)
    return found if isinstance(found, DirectSocket) else None
