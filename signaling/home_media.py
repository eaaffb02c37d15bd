"""A homed room's media on its home node: offers answered off the room's loop, one at a time per seat; seats
leaving; the room's media closed when it ends; and its recording started and stopped.

The relay is ``media.MediaRooms`` and the recorder ``recordings.recorder.Recorder``, as :class:`MediaRelay`
and :class:`RoomRecorder` describe them; the hub (``signaling.hub``) carries out the room's media effects
here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from core.clock import Clock
from core.errors import N_
from media.sink import PacketSink
from recordings.recorder import UNWRITABLE
from signaling.protocol import ErrorCode, ErrorFrame, MediaAnswer, ServerMessage
from signaling.room import Effect, Room

log = structlog.get_logger("tsunagu.rooms")

MEDIA_FAILED = N_("Video could not be connected. Please reload the camera from the menu.")
NO_MEDIA = N_("Video is not available on this server.")


class MediaRelay(Protocol):
    """The room's video relay on its home node (``media.MediaRooms``); seats are ``"host"`` / ``"guest"``,
    and ``observer:<connection>`` for a manager sitting in, who receives ``sources`` (seat, m-line) only."""

    async def answer(
        self, room_id: str, seat: str, offer_sdp: str, sources: tuple[tuple[str, int], ...] | None = None
    ) -> str: ...

    async def leave(self, room_id: str, seat: str) -> None: ...

    async def close_room(self, room_id: str) -> None: ...

    def record(self, room_id: str, sink: PacketSink | None) -> None: ...


class RoomRecorder(Protocol):
    """Writes a room's tracks while its recording runs (``recordings.recorder.Recorder``)."""

    async def start(self, room_id: str, failed: Callable[[str], None]) -> PacketSink:
        """Start a new set of files; ``failed(reason)`` is called (on the loop) if writing fails."""
        ...

    async def stop(self, room_id: str) -> None: ...


class FirstMedia:
    """The sink of an armed room before its recording starts: tells the home when the first media arrives
    (the recording starts with the call), once."""

    def __init__(self, arrived: Callable[[], None]) -> None:
        self._arrived: Callable[[], None] | None = arrived

    def packet(self, seat: str, mline: int, kind: str, data: bytes, header: int, now: float) -> bool:
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            arrived()
        return False


Reply = Callable[[str, str, ServerMessage], Awaitable[None]]
"""How an answer reaches the socket that made the offer: (room, connection, message)."""
PostSoon = Callable[[str, dict[str, Any]], None]
"""How the relay's and the recorder's callbacks hand an event to a room homed here: (room, event)."""


class HomeMedia:
    """The media of the rooms homed on this node (``media`` None: a node without video)."""

    def __init__(
        self,
        media: MediaRelay | None,
        recorder: RoomRecorder | None,
        clock: Clock,
        reply: Reply,
        post_soon: PostSoon,
    ) -> None:
        self.media = media
        self.recorder = recorder
        self.clock = clock
        self._reply = reply
        self._post_soon = post_soon
        # Offers are answered off the room's loop (ICE gathering takes a moment), one at a time per seat so a
        # restart's answer cannot overtake the answer to the offer before it.
        self._negotiations: dict[tuple[str, str], asyncio.Task[None]] = {}  # by (room, seat)

    def arm(self, room_id: str) -> None:
        """A room opened with its recording switched on: its first media starts the recording."""
        if self.media is not None:
            started = FirstMedia(lambda: self._post_soon(room_id, {"event": "media_started"}))
            self.media.record(room_id, started)

    def negotiate(
        self,
        room_id: str,
        seat: str,
        connection: str,
        sdp: str,
        sources: tuple[tuple[str, int], ...] | None = None,
    ) -> None:
        key = (room_id, seat)
        previous = self._negotiations.get(key)
        task = asyncio.create_task(
            self._answer(room_id, seat, connection, sdp, previous, sources), name=f"media-{room_id}"
        )
        self._negotiations[key] = task
        task.add_done_callback(
            lambda done: self._negotiations.pop(key, None) if self._negotiations.get(key) is done else None
        )

    async def _answer(
        self,
        room_id: str,
        seat: str,
        connection: str,
        sdp: str,
        previous: asyncio.Task[None] | None,
        sources: tuple[tuple[str, int], ...] | None,
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        reply: MediaAnswer | ErrorFrame
        if self.media is None:
            reply = ErrorFrame(code=ErrorCode.MEDIA_UNAVAILABLE, message=NO_MEDIA)
        else:
            try:
                reply = MediaAnswer(sdp=await self.media.answer(room_id, seat, sdp, sources))
            except Exception:
                log.exception("could not answer a media offer", room=room_id, seat=seat)
                reply = ErrorFrame(code=ErrorCode.MEDIA_FAILED, message=MEDIA_FAILED)
        await self._reply(room_id, connection, reply)

    async def leave(self, room_id: str, seat: str) -> None:
        previous = self._negotiations.pop((room_id, seat), None)
        if previous is not None:
            previous.cancel()
        if self.media is not None:
            await self.media.leave(room_id, seat)

    async def start_recording(self, room: Room) -> list[Effect]:
        """Start the recorder and feed it the room's packets; a recorder that cannot start (no disk, no
        recorder on this node) stops the recording with a message to the host, and the call goes on."""
        if self.recorder is None or self.media is None:
            return room.recording_failed(UNWRITABLE, self.clock())
        room_id = room.id
        try:
            sink = await self.recorder.start(
                room_id,
                lambda reason: self._post_soon(room_id, {"event": "recording_failed", "reason": reason}),
            )
        except Exception:
            log.exception("recording.start_failed", room=room_id)
            return room.recording_failed(UNWRITABLE, self.clock())
        self.media.record(room_id, sink)
        return []

    async def stop_recording(self, room_id: str) -> None:
        if self.media is not None:
            self.media.record(room_id, None)
        if self.recorder is not None:
            await self.recorder.stop(room_id)

    async def close_room(self, room_id: str) -> None:
        """The room ended or left this node: its answers still pending, its media, and its files (finished
        whatever ended the room)."""
        tasks = [task for (room, _), task in self._negotiations.items() if room == room_id]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.media is not None:
            try:
                await self.media.close_room(room_id)
            except Exception:
                log.exception("could not close a room's media", room=room_id)
        if self.recorder is not None:
            await self.recorder.stop(room_id)

    async def aclose(self) -> None:
        tasks = list(self._negotiations.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
