"""The recorder (レコログ): a room's published packets to one WebM file per track, off the event loop.

:class:`RoomRecording` is the packet sink the relay feeds (``media.sink.PacketSink``, attached by the hub):
on the loop it only puts each packet in a bounded queue; its own thread muxes (``recordings.webm``) into a
spool directory on this node's disk. Forwarding never waits: when the queue is full (the disk does not keep
up) or a write fails (disk full, unwritable), the recording is marked damaged with the reason, the files so
far are kept, and ``failed`` tells the room (the host sees why; the call goes on).

When a recording stops, :class:`Recorder` hands each finished file to storage (``core.storage``: this box's
``DATA_DIR/recordings/<org>/…`` or S3) and stores a :class:`~recordings.models.Recording` row. A node that
was killed leaves its files open in the spool; the next start (:meth:`Recorder.recover`) remuxes them
(duration, cues), stores them the same way and marks them recovered. A live recording holds a lock on its
spool directory, so a node recovering never takes what another still writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock, monotonic_clock
from core.errors import N_
from core.storage import Storage
from recordings.models import MeetingRecord, Recording
from recordings.webm import TrackResult, TrackWriter, remux

log = structlog.get_logger("tsunagu.recordings")

DRAIN_EVERY = 0.05  # seconds the writer thread sleeps when it has written everything
QUEUE_PACKETS = 4096  # packets waiting for the disk, all tracks of a room: ~10 s of two cameras and audio
TRACKS = {0: "camera", 1: "screen", 2: "audio"}  # by m-line (media.peer.LAYOUT)
SEATS = ("host", "guest")
LOCK = ".lock"

TOO_SLOW = N_("Recording stopped: the disk could not keep up. The call goes on.")
DISK_FULL = N_("Recording stopped: the disk is full. The call goes on.")
UNWRITABLE = N_("Recording stopped: the recording could not be written. The call goes on.")

Failed = Callable[[str], None]


def _reason(exc: BaseException) -> str:
    return DISK_FULL if isinstance(exc, OSError) and exc.errno == errno.ENOSPC else UNWRITABLE


@dataclass
class Finished:
    """What a stopped recording left in its spool directory."""

    directory: Path
    origin: datetime
    tracks: list[tuple[str, str, TrackResult]] = field(default_factory=list)  # (seat, track, result)
    damaged: str = ""


class RoomRecording:
    """One start of a room's recording: the relay's packet sink, and the thread that writes its files."""

    def __init__(
        self,
        directory: Path,
        failed: Failed,
        loop: asyncio.AbstractEventLoop,
        queue_packets: int = QUEUE_PACKETS,
        clock: Clock = monotonic_clock,
    ) -> None:
        self.directory = directory
        self._origin_ms = time.time_ns() // 1_000_000
        self.origin = datetime.fromtimestamp(self._origin_ms / 1000, UTC)
        self._clock = clock
        self._origin_mono = clock()
        self._failed = failed
        self._loop = loop
        # A plain deque the thread drains every DRAIN_EVERY seconds: a wake-up per packet (queue.Queue)
        # would cost a thread switch per packet, more than the muxing itself.
        self._pending: deque[tuple[str, int, str, bytes, int, float] | None] = deque()
        self._limit = queue_packets
        self._wake = threading.Event()
        self.waiting: set[tuple[str, int]] = set()  # video tracks without a keyframe yet (thread writes)
        self._started: set[tuple[str, int]] = set()
        self.damaged = ""
        self.packets = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(directory / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._result = Finished(directory, self.origin)
        self._stopping = False
        self._done: asyncio.Future[Finished] = loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{directory.name}", daemon=True)
        self._thread.start()

    # On the event loop (media.sink.PacketSink)

    def packet(self, seat: str, mline: int, kind: str, data: bytes, header: int, now: float) -> bool:
        if self.damaged or seat not in SEATS or mline not in TRACKS:
            return False
        key = (seat, mline)
        if key not in self._started:
            self._started.add(key)
            if kind == "video":
                self.waiting.add(key)
        if len(self._pending) >= self._limit:
            self._fail(TOO_SLOW)
            return False
        self._pending.append((seat, mline, kind, data, header, self._clock()))
        self.packets += 1
        return key in self.waiting

    def stop(self) -> asyncio.Future[Finished]:
        """Stop taking packets; the thread finishes the files. The future gives what was written."""
        if not self._done.done() and self._thread.is_alive() and not self._stopping:
            self._stopping = True
            self._pending.append(None)
            self._wake.set()
        return self._done

    def _fail(self, reason: str) -> None:
        if not self.damaged:
            self.damaged = reason
            self._failed(reason)

    # In the thread

    def _run(self) -> None:
        writers: dict[tuple[str, int], TrackWriter] = {}
        broken: str = ""
        pending = self._pending
        try:
            while True:
                if not pending:
                    self._wake.wait(DRAIN_EVERY)
                    self._wake.clear()
                    continue
                item = pending.popleft()
                if item is None:
                    break
                if broken:
                    continue
                seat, mline, kind, data, header, arrived = item
                key = (seat, mline)
                writer = writers.get(key)
                if writer is None:
                    name = f"{seat}-{TRACKS[mline]}"
                    writer = writers[key] = TrackWriter(self.directory, name, kind, self._origin_ms)
                try:
                    writer.packet(data, header, (arrived - self._origin_mono) * 1000)
                except Exception as exc:
                    broken = _reason(exc)
                    log.warning("recording.write_failed", directory=str(self.directory), error=repr(exc))
                    self._loop.call_soon_threadsafe(self._fail, broken)
                    continue
                if not writer.waiting_keyframe:
                    self.waiting.discard(key)
        finally:
            for (seat, mline), writer in writers.items():
                try:
                    result = writer.close()
                except Exception as exc:
                    broken = broken or _reason(exc)
                    continue
                if result is not None:
                    self._result.tracks.append((seat, TRACKS[mline], result))
            self._result.damaged = broken
            os.close(self._lock)  # lets a recovering node know these files are finished
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        self._result.damaged = self._result.damaged or self.damaged
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
        self._storing: set[asyncio.Task[None]] = set()

    async def start(self, room_id: str, failed: Failed) -> RoomRecording:
        """Start writing the room's tracks (after :meth:`stop`, a new set of files)."""
        await self.stop(room_id)
        async with self.sessions() as db:
            org_id = await db.scalar(select(MeetingRecord.org_id).where(MeetingRecord.room_id == room_id))
        if org_id is None:
            raise LookupError(f"no meeting record for room {room_id}")
        directory = self.spool / str(org_id) / room_id / f"{time.time_ns()}"
        loop = asyncio.get_running_loop()
        recording = RoomRecording(directory, failed, loop, self.queue_packets, self.clock)
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

    async def aclose(self) -> None:
        for room_id in list(self._live):
            await self.stop(room_id)
        await self.settle()

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
