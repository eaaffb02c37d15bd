"""The recorder (レコログ): a room's published packets to one WebM file per track, off the event loop.

:class:`RoomRecording` is the packet sink the relay feeds (``media.sink.PacketSink``, attached by the hub):
on the loop it only appends each packet to a buffer that goes, batched, into the pipe of this node's one
writer child process (``recordings.pool``, ``recordings.writer``; every recording shares it), which muxes
(``recordings.webm``) into a spool directory per recording on this node's disk: muxing and disk writes never
take the event loop's process. A writer process that dies damages every recording on it (the reason says
so); the next start gets a new one. Forwarding never waits: when the queue
is full (the disk does not keep up) or a write fails (disk full, unwritable), the recording is marked
damaged with the reason, the files so far are kept, and ``failed`` tells the room (the host sees why; the
call goes on).

When a recording stops, :class:`Recorder` hands each finished file to storage (``core.storage``: this box's
``DATA_DIR/recordings/<org>/…`` or S3) and stores a :class:`~recordings.models.Recording` row. A node that
was killed leaves its files open in the spool; the next start (:meth:`Recorder.recover`) remuxes them
(duration, cues), stores them the same way and marks them recovered. A live recording holds a lock on its
spool directory, so a node recovering never takes what another still writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock, monotonic_clock
from core.errors import N_
from core.storage import Storage
from recordings.models import MeetingRecord, Recording
from recordings.pool import FLUSH_EVERY, WRITER_GONE, WriterProcess, Writers
from recordings.webm import TrackResult, remux
from recordings.writer import DISK_FULL, FRAME, SEATS, STOP, SYNC, TRACKS, UNWRITABLE

__all__ = [
    "DISK_FULL",
    "FLUSH_EVERY",
    "TOO_SLOW",
    "UNWRITABLE",
    "WRITER_GONE",
    "Finished",
    "Recorder",
    "RoomRecording",
    "Writers",
]

log = structlog.get_logger("tsunagu.recordings")
CLOSE_WITHIN = 20.0  # seconds a shutdown waits for the writer to finish the files

QUEUE_PACKETS = 4096  # packets the child's pipe has not taken, all tracks of a room: seconds of a slow disk
SEAT_INDEX = {seat: index for index, seat in enumerate(SEATS)}
LOCK = ".lock"

TOO_SLOW = N_("Recording stopped: the disk could not keep up. The call goes on.")

Failed = Callable[[str], None]


@dataclass
class Finished:
    """What a stopped recording left in its spool directory."""

    directory: Path
    origin: datetime
    tracks: list[tuple[str, str, TrackResult]] = field(default_factory=list)  # (seat, track, result)
    damaged: str = ""


class RoomRecording:
    """One start of a room's recording: the relay's packet sink, written by this node's writer process
    (``recordings.pool.WriterProcess``, shared by every recording).

    On the loop, a packet is only appended to this recording's buffer (framed with its id); every
    :data:`FLUSH_EVERY` seconds the writer process moves every recording's buffer to the child's pipe in one
    non-blocking write. Packets the pipe has not taken yet are the bounded queue: more than
    ``queue_packets`` of them and the recording is damaged (the disk does not keep up)."""

    def __init__(
        self,
        directory: Path,
        failed: Failed,
        writer: WriterProcess,
        queue_packets: int = QUEUE_PACKETS,
        clock: Clock = monotonic_clock,
    ) -> None:
        self.directory = directory
        self._origin_ms = time.time_ns() // 1_000_000
        self.origin = datetime.fromtimestamp(self._origin_ms / 1000, UTC)
        self._clock = clock
        self._origin_mono = clock()
        self._failed = failed
        self._loop = loop = writer.loop
        self._writer = writer
        self.buffer = bytearray()  # framed packets not yet moved to the pipe
        self.queued = 0  # packets the pipe has not taken yet
        self._limit = queue_packets
        self.waiting: set[tuple[str, int]] = set()  # video tracks without a keyframe written yet
        self._started: set[tuple[str, int]] = set()
        self.damaged = ""
        self._closed = False  # damaged or stopping: packets are dropped
        self._result = Finished(directory, self.origin)
        self._stopping = False
        self._synced: list[asyncio.Future[None]] = []
        self._done: asyncio.Future[Finished] = loop.create_future()
        directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(directory / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The writer holds the lock from here on (the same open file): until the files are finished.
            self._id = writer.add(self, str(directory), self._origin_ms, lock)
        finally:
            os.close(lock)

    # On the event loop (media.sink.PacketSink)

    def packet(self, seat: str, mline: int, kind: str, data: bytes, header: int, now: float) -> bool:
        # Per packet on the loop: a few lookups, one header packed, two appends; nothing else.
        if self._closed:
            return False
        key = (seat, mline)
        if key not in self._started:
            if seat not in SEAT_INDEX or mline not in TRACKS:
                return False
            self._started.add(key)
            if kind == "video":
                self.waiting.add(key)
        if self.queued >= self._limit:
            self._fail(TOO_SLOW)
            return False
        buffer = self.buffer
        if not buffer:
            self._writer.changed(self)
        buffer += FRAME.pack(
            self._id, SEAT_INDEX[seat], mline, header, (self._clock() - self._origin_mono) * 1000, len(data)
        )
        buffer += data
        self.queued += 1
        if self.waiting and key in self.waiting:
            # Until the child has a keyframe of this track, the relay asks for one at every packet (spaced
            # 0.1 s): hand the packets over at once, so that the child can say so within milliseconds.
            self._writer.flush_soon()
            return True
        return False

    def stop(self) -> asyncio.Future[Finished]:
        """Stop taking packets; the writer finishes the files. The future gives what was written."""
        if not self._stopping:
            self._stopping = self._closed = True
            self._control(STOP)
        return self._done

    async def synced(self) -> None:
        """Wait until every packet given so far is written (tests)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._synced.append(future)
        self._control(SYNC)
        await future

    def _control(self, kind: int) -> None:
        if not self.buffer:
            self._writer.changed(self)
        self.buffer += FRAME.pack(self._id, kind, 0, 0, 0.0, 0)
        self._writer.flush_soon()
        if not self._writer.alive:
            self.gone()

    def _fail(self, reason: str) -> None:
        if not self.damaged:
            self.damaged = reason
            self._closed = True
            self._failed(reason)

    # From the writer process (recordings.pool)

    def answer(self, message: tuple[Any, ...]) -> None:
        match message:
            case ("keyframe", _, int(seat), int(mline)):
                self.waiting.discard((SEATS[seat], mline))
            case ("failed", _, str(reason)):
                self._fail(reason)
            case ("synced", _):
                if self._synced:
                    self._synced.pop(0).set_result(None)
            case ("finished", _, list(tracks), str(damaged)):
                for seat, track, path, start, end, frames in tracks:
                    self._result.tracks.append((seat, track, TrackResult(Path(path), start, end, frames)))
                self._result.damaged = damaged
                self._finish()

    def gone(self) -> None:
        """The writer process died: what it wrote stays in the spool for the next start to recover."""
        self._fail(WRITER_GONE)
        self.buffer.clear()
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._result.damaged = self._result.damaged or self.damaged
        for future in self._synced:
            if not future.done():
                future.set_result(None)
        if not self._done.done():
            self._done.set_result(self._result)


class Recorder:
    """Every recording of this node: started and stopped by the rooms' hub, stored when finished."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        spool: Path,
        queue_packets: int = QUEUE_PACKETS,
        clock: Clock = monotonic_clock,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.spool = spool
        self.queue_packets = queue_packets
        self.clock = clock  # arrival times of packets (the files' timestamps of a stream's start)
        self._live: dict[str, RoomRecording] = {}
        self.writers = Writers()  # this node's one writer process, started at the first recording
        self._storing: set[asyncio.Task[None]] = set()

    async def start(self, room_id: str, failed: Failed) -> RoomRecording:
        """Start writing the room's tracks (after :meth:`stop`, a new set of files)."""
        await self.stop(room_id)
        async with self.sessions() as db:
            org_id = await db.scalar(select(MeetingRecord.org_id).where(MeetingRecord.room_id == room_id))
        if org_id is None:
            raise LookupError(f"no meeting record for room {room_id}")
        directory = self.spool / str(org_id) / room_id / f"{time.time_ns()}"
        writer = self.writers.current(asyncio.get_running_loop())
        recording = RoomRecording(directory, failed, writer, self.queue_packets, self.clock)
        self._live[room_id] = recording
        log.info("recording.started", room=room_id)
        return recording

    def live(self, room_id: str) -> RoomRecording | None:
        return self._live.get(room_id)

    async def stop(self, room_id: str) -> None:
        """Stop the room's recording; its files are finished and stored in the background."""
        recording = self._live.pop(room_id, None)
        if recording is None:
            return
        done = recording.stop()
        task = asyncio.create_task(self._store(room_id, done), name=f"recording-{room_id}")
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def settle(self) -> None:
        """Wait until every stopped recording is stored (tests, shutdown)."""
        while self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)

    async def aclose(self, within: float = CLOSE_WITHIN) -> None:
        """Stop and store every recording; a writer that does not finish ``within`` seconds (a hung disk) is
        killed rather than holding the server's shutdown for ever."""
        try:
            async with asyncio.timeout(within):
                for room_id in list(self._live):
                    await self.stop(room_id)
                await self.settle()
                await self.writers.aclose()
        except TimeoutError:
            log.warning("recordings.writer_hung", within=within)
            self.writers.kill()
            async with asyncio.timeout(within):
                await self.settle()
                await self.writers.aclose()

    async def _store(self, room_id: str, done: asyncio.Future[Finished]) -> None:
        finished = await done
        org_id = finished.directory.parent.parent.name
        state = "damaged" if finished.damaged else "done"
        for seat, track, result in finished.tracks:
            origin = finished.origin + timedelta(milliseconds=result.start_ms)  # the file's time 0
            try:
                await self._keep(
                    int(org_id),
                    room_id,
                    seat,
                    track,
                    result.path,
                    origin,
                    (0, result.end_ms - result.start_ms),
                    state,
                    finished.damaged,
                )
            except Exception:
                log.exception("recording.store_failed", room=room_id, file=str(result.path))
        _remove_if_empty(finished.directory)

    async def _keep(
        self,
        org_id: int,
        room_id: str,
        seat: str,
        track: str,
        path: Path,
        origin: datetime,
        span: tuple[int, int],
        state: str,
        reason: str,
    ) -> None:
        key = f"recordings/{org_id}/{room_id}/{path.name}"
        size = (await asyncio.to_thread(path.stat)).st_size
        await self.storage.put_file(key, path)
        async with self.sessions.begin() as db:
            db.add(
                Recording(
                    org_id=org_id,
                    room_id=room_id,
                    seat=seat,
                    track=track,
                    key=key,
                    origin_at=origin,
                    start_ms=span[0],
                    end_ms=span[1],
                    size=size,
                    state=state,
                    reason=reason,
                )
            )
        await asyncio.to_thread(path.unlink, True)  # put_file may have moved it already

    async def recover(self) -> int:
        """Finish what a killed predecessor left open in the spool: remux each file (duration, cues), store
        it and mark it recovered. Directories a live recording holds (locked) are left alone."""
        count = 0
        if not self.spool.is_dir():
            return 0
        for directory in sorted(self.spool.glob("*/*/*")):
            if not directory.is_dir() or not await asyncio.to_thread(_unlocked, directory):
                continue
            org_id, room_id = directory.parent.parent.name, directory.parent.name
            for path in sorted(directory.glob("*.webm")):
                count += await self._recover_file(org_id, room_id, path)
            _remove_if_empty(directory)
        return count

    async def _recover_file(self, org_id: str, room_id: str, path: Path) -> int:
        parts = path.stem.split("-")
        if len(parts) != 3 or not parts[0].isdigit() or not org_id.isdigit():
            return 0
        origin = datetime.fromtimestamp(int(parts[0]) / 1000, UTC)
        repaired = path.with_name(f"{path.stem}.recovered.webm")
        span = await asyncio.to_thread(remux, path, repaired)
        if span is None:
            log.warning("recording.unrecoverable", file=str(path))
            await asyncio.to_thread(repaired.unlink, True)
            await asyncio.to_thread(path.unlink, True)
            return 0
        await asyncio.to_thread(os.replace, repaired, path)
        await self._keep(int(org_id), room_id, parts[1], parts[2], path, origin, span, "recovered", "")
        log.info("recording.recovered", room=room_id, file=path.name)
        return 1


def _unlocked(directory: Path) -> bool:
    """Whether no live recording holds ``directory`` (its lock is free, or it has none)."""
    lock = directory / LOCK
    if not lock.exists():
        return True
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _remove_if_empty(directory: Path) -> None:
    (directory / LOCK).unlink(missing_ok=True)
    for path in (directory, directory.parent):
        with contextlib.suppress(OSError):
            path.rmdir()
