"""A room channel socket's two halves: reading (every frame validated at the edge, paced, bad ones answered)
and writing (the room's frames, in the socket's language, and its close codes).

A memo keystroke is the one frame people send many a second. When the socket is served by
:class:`web.direct_socket.DirectProtocol`, a memo frame is handled as soon as it is read, in the protocol's
callback, and the peer's copy is written to the peer's socket in the same callback: the same checks and the
same room as through the reading task, without the task switches (bench/README.md). Anything else, and a
memo frame whenever something is still waiting before it, goes the ordinary way.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.errors import N_, Unavailable
from core.ratelimit import TokenBucket
from signaling.connections import Connection, Participant
from signaling.homes import ADOPTED_WITHIN_SECONDS
from signaling.protocol import (
    BadMessage,
    CloseCode,
    ErrorCode,
    ErrorFrame,
    memo_awareness_data,
    memo_sync_data,
    parse_client_message,
)
from web.direct_socket import direct_socket
from web.i18n import Translator
from web.services import services

log = structlog.get_logger("tsunagu.meetings")
MAX_BAD_FRAMES = 20  # bad or rate-limited frames on one connection before it is closed (1008)
# How long a new socket waits for its room's welcome before closing with 4503 (the page then tries again):
# longer than a dead home takes to be adopted, so that a page reconnecting meanwhile is welcomed by the
# adopter, rather than giving up just before it and sleeping through its back-off (issue 17: both sides back
# in the call within 15 s of their home's death; with 5 s, a CI run on a loaded box missed that, the page
# still reconnecting).
WELCOME_SECONDS = ADOPTED_WITHIN_SECONDS + 3.0
TOO_MANY_MESSAGES = N_("Too many messages at once: some were not delivered. Please slow down.")


async def write_frames(websocket: WebSocket, participant: Connection, _: Translator) -> None:
    """Send a room's frames for this connection to the socket, in the socket's language; close with the
    room's close code (or 4503 when the room's node never welcomes it)."""
    got_welcome = False
    iterator = participant.outgoing().__aiter__()
    direct = direct_socket(websocket.scope)
    try:
        while True:
            try:
                # The home node answers a connect with a welcome; silence means it is gone.
                item = await (
                    iterator.__anext__()
                    if got_welcome
                    else asyncio.wait_for(iterator.__anext__(), WELCOME_SECONDS)
                )
            except (StopAsyncIteration, TimeoutError):
                with contextlib.suppress(Exception):
                    await websocket.close(int(CloseCode.UNAVAILABLE))
                return
            if not got_welcome and direct is not None:
                # From the welcome on, frames may be written by whoever produces them (see the docstring).
                participant.send_directly(direct.send_text_now)
            got_welcome = True
            if item.close is not None:
                with contextlib.suppress(Exception):
                    await websocket.close(int(item.close))
                return
            if item.text is not None:
                if not await _send_text(websocket, item.text):
                    return
                continue
            frame = item.frame
            if frame is not None and frame.get("type") == "error":
                frame = {**frame, "message": _(frame["message"])}  # the room speaks in message ids
            if not await send_frame(websocket, frame):
                return
    finally:
        participant.send_directly(None)


class _Reader:
    """Reads one participant's frames: see :func:`read_frames`."""

    def __init__(self, websocket: WebSocket, participant: Participant, _: Translator) -> None:
        self.websocket = websocket
        self.participant = participant
        self._ = _
        state = services(websocket)
        self.clock = state.clock
        self.pace = TokenBucket(state.settings.room_messages_per_second, state.settings.room_message_burst)
        self.bad = 0
        self.waiting = False  # the reading task waits for the next frame: nothing read is still being handled

    def take_now(self, text: str) -> bool:
        """A frame as it is read (web.direct_socket): a keystroke or its caret, in the form browsers send
        them (read without the validator, signaling/protocol.py), is handled at once when the room takes it
        now and nothing read before it is still being handled. False: it goes through :meth:`run`, which
        reads it in full and answers what is wrong with it (so nothing is parsed twice)."""
        if not self.waiting:
            return False
        participant = self.participant
        data, send = memo_sync_data(text), participant.send_memo_now
        if data is None:
            data, send = memo_awareness_data(text), participant.send_awareness_now
            if data is None:
                return False
        if not participant.takes_memo_now() or not self.pace.take(self.clock()):
            return False
        send(data)
        return True

    async def run(self) -> None:
        websocket, participant, _ = self.websocket, self.participant, self._
        while True:
            self.waiting = True
            try:
                event = await websocket.receive()
            finally:
                self.waiting = False
            if event["type"] == "websocket.disconnect":
                return
            refusal: ErrorFrame | None = None
            if not self.pace.take(self.clock()):
                refusal = ErrorFrame(code=ErrorCode.RATE_LIMITED, message=_(TOO_MANY_MESSAGES))
            else:
                text = event.get("text")
                try:
                    if text is None:  # a binary frame: the channel speaks JSON text only
                        raise BadMessage()
                    message = parse_client_message(text)
                except BadMessage as exc:
                    refusal = ErrorFrame(code=ErrorCode.BAD_MESSAGE, message=_(exc.message))
            if refusal is None:
                try:
                    await participant.send(message)
                except Unavailable:
                    # The room's home could not be reached in time (Redis down): this message did not
                    # arrive. Close so that the browser reconnects and sends what it still holds (終了 among
                    # it) again.
                    log.warning("room.message_not_delivered", room=participant.room_id, kind=message.type)
                    with contextlib.suppress(Exception):
                        await websocket.close(int(CloseCode.UNAVAILABLE))
                    return
                continue
            self.bad += 1
            if not await send_frame(websocket, refusal.model_dump()):
                return
            if self.bad >= MAX_BAD_FRAMES:
                with contextlib.suppress(Exception):
                    await websocket.close(int(CloseCode.POLICY_VIOLATION))
                return


async def read_frames(websocket: WebSocket, participant: Participant, _: Translator) -> None:
    """Validate each frame at the edge; a bad one gets an error frame, too many close this socket only.

    Text frames only (a binary frame is a bad frame), and at most ``ROOM_MESSAGES_PER_SECOND`` frames a
    second per connection (``ROOM_MESSAGE_BURST`` at once): past that a frame is refused with a
    ``rate_limited`` error frame and counts as bad, so a flood ends with the socket closed (1008)."""
    reader = _Reader(websocket, participant, _)
    direct = direct_socket(websocket.scope)
    if direct is not None:
        direct.on_text(reader.take_now)
    try:
        await reader.run()
    finally:
        if direct is not None:
            direct.on_text(None)


async def send_frame(websocket: WebSocket, frame: Any) -> bool:
    """Send one frame; False when the socket is already closed, by the other task or by the peer.

    Reader and writer share the socket, so either may find it closed by the other (a reader closing with
    1008 while a pong is on its way; the writer closing with a close code while an error frame is); and the
    peer may be gone. That ends this connection, not the server's handling of it.
    """
    try:
        await websocket.send_json(frame)
    except (WebSocketDisconnect, RuntimeError):  # Starlette's "closed" error is a RuntimeError
        return False
    return True


async def _send_text(websocket: WebSocket, text: str) -> bool:
    """Send one frame already serialized (most frames: serialized once for every socket); as :func:`_send`."""
    try:
        await websocket.send_text(text)
    except (WebSocketDisconnect, RuntimeError):
        return False
    return True
