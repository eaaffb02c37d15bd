"""The recorder (レコログ): a room's published packets to one WebM file per track, off the event loop.

:class:`RoomRecording` is the packet sink the relay feeds (``media.sink.PacketSink``, attached by the hub):
on the loop it only appends each packet to a buffer that goes, batched, into a pipe to its own child
process (``recordings.writer``), which muxes (``recordings.webm``) into a spool directory on this node's
disk: muxing and disk writes never take the event loop's process. Forwarding never waits: when the queue
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
import pickle
import subprocess
import sys
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
from recordings.webm import TrackResult, remux
from recordings.writer import DISK_FULL, LENGTH, PACKET, SEATS, STOP, SYNC, TRACKS, UNWRITABLE

__all__ = ["DISK_FULL", "TOO_SLOW", "UNWRITABLE", "Finished", "Recorder", "RoomRecording"]

log = structlog.get_logger("tsunagu.recordings")

# Seconds between the loop's writes of the buffered packets to the child's pipe: each write wakes the child
# (a context switch on both sides), so fewer, larger writes; a node killed loses at most this much more.
FLUSH_EVERY = 0.25
QUEUE_PACKETS = 4096  # packets the child's pipe has not taken, all tracks of a room: seconds of a slow disk
PIPE_BYTES = 1 << 20  # the child's pipe (the kernel's default is 64 KiB)
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), spelled out for Python builds that lack the name
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
    """One start of a room's recording: the relay's packet sink, and the child process that writes its files
    (``recordings.writer``).

    On the loop, a packet is only appended to a buffer; every :data:`FLUSH_EVERY` seconds the buffer goes to
    the child's pipe in one non-blocking write. Packets the pipe has not taken yet are the bounded queue: more
    than ``queue_packets`` of them and the recording is damaged (the disk does not keep up)."""

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
        self._buffer = bytearray()  # packets (writer.PACKET headers) the pipe has not taken yet
        self._queued = 0  # how many
        self._limit = queue_packets
        self.waiting: set[tuple[str, int]] = set()  # video tracks without a keyframe written yet
        self._started: set[tuple[str, int]] = set()
        self.damaged = ""
        self._closed = False  # damaged or stopping: packets are dropped
        self._flush_soon = False
        self._result = Finished(directory, self.origin)
        self._stopping = False
        self._synced: list[asyncio.Future[None]] = []
        self._done: asyncio.Future[Finished] = loop.create_future()
        directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(directory / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The child holds the lock from here on (the same open file): until its files are finished.
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "recordings.writer",
                    str(directory),
                    str(self._origin_ms),
                    str(lock),
                    str(os.getpid()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(lock,),
            )
        finally:
            os.close(lock)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._pipe = self._process.stdin.fileno()
        self._answers = self._process.stdout.fileno()
        os.set_blocking(self._pipe, False)
        os.set_blocking(self._answers, False)
        with contextlib.suppress(OSError):  # a larger pipe rides out a slow disk for longer
            fcntl.fcntl(self._pipe, F_SETPIPE_SZ, PIPE_BYTES)
        self._read = bytearray()
        self._result_known = False
        self._writable = False  # waiting for the pipe to take more (add_writer)
        loop.add_reader(self._answers, self._on_answers)
        self._timer = loop.call_later(FLUSH_EVERY, self._tick)

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
        if self._queued >= self._limit:
            self._fail(TOO_SLOW)
            return False
        buffer = self._buffer
        buffer += PACKET.pack(
            SEAT_INDEX[seat], mline, header, (self._clock() - self._origin_mono) * 1000, len(data)
        )
        buffer += data
        self._queued += 1
        if self.waiting and key in self.waiting:
            # Until the child has a keyframe of this track, the relay asks for one at every packet (spaced
            # 0.1 s): hand the packets over at once, so that the child can say so within milliseconds.
            if not self._flush_soon:
                self._flush_soon = True
                self._loop.call_soon(self._flush_now)
            return True
        return False

    def stop(self) -> asyncio.Future[Finished]:
        """Stop taking packets; the child finishes the files. The future gives what was written."""
        if not self._stopping:
            self._stopping = self._closed = True
            self._timer.cancel()
            self._buffer += PACKET.pack(STOP, 0, 0, 0.0, 0)
            self._flush()
        return self._done

    async def synced(self) -> None:
        """Wait until every packet given so far is written (tests)."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._synced.append(future)
        self._buffer += PACKET.pack(SYNC, 0, 0, 0.0, 0)
        self._flush()
        await future

    def _fail(self, reason: str) -> None:
        if not self.damaged:
            self.damaged = reason
            self._closed = True
            self._failed(reason)

    def _flush_now(self) -> None:
        self._flush_soon = False
        self._flush()

    def _tick(self) -> None:
        self._flush()
        if not self._stopping:
            self._timer = self._loop.call_later(FLUSH_EVERY, self._tick)

    def _flush(self) -> None:
        if not self._buffer or self._pipe < 0:
            return
        try:
            written = os.write(self._pipe, self._buffer)
        except BlockingIOError:
            written = 0
        except OSError:  # the child is gone: what it wrote stays in the spool for the next start
            self._buffer.clear()
            self._fail(UNWRITABLE)
            return
        del self._buffer[:written]
        if not self._buffer:
            self._queued = 0
            if self._writable:
                self._writable = False
                self._loop.remove_writer(self._pipe)
        elif not self._writable:
            self._writable = True
            self._loop.add_writer(self._pipe, self._flush)
        if self._stopping and not self._buffer:
            self._close_pipe()

    def _close_pipe(self) -> None:
        if self._pipe >= 0:
            if self._writable:
                self._loop.remove_writer(self._pipe)
                self._writable = False
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._pipe = -1

    def _on_answers(self) -> None:
        try:
            chunk = os.read(self._answers, 65536)
        except BlockingIOError:
            return
        if not chunk:  # the child exited
            self._loop.remove_reader(self._answers)
            self._timer.cancel()
            self._close_pipe()
            if not self._result_known:
                self._fail(UNWRITABLE)  # it died: what it wrote stays in the spool for the next start
            self._loop.run_in_executor(None, self._process.wait).add_done_callback(lambda _: self._finish())
            return
        self._read += chunk
        while len(self._read) >= LENGTH.size:
            (size,) = LENGTH.unpack_from(self._read)
            if len(self._read) < LENGTH.size + size:
                break
            message = pickle.loads(bytes(self._read[LENGTH.size : LENGTH.size + size]))
            del self._read[: LENGTH.size + size]
            self._answer(message)

    def _answer(self, message: tuple[Any, ...]) -> None:
        match message:
            case ("keyframe", int(seat), int(mline)):
                self.waiting.discard((SEATS[seat], mline))
            case ("failed", str(reason)):
                self._fail(reason)
            case ("synced",):
                if self._synced:
                    self._synced.pop(0).set_result(None)
            case ("finished", list(tracks), str(damaged)):
                self._result_known = True
                for seat, track, path, start, end, frames in tracks:
                    self._result.tracks.append((seat, track, TrackResult(Path(path), start, end, frames)))
                self._result.damaged = damaged

    def _finish(self) -> None:
        if self._process.stdout is not None:
            self._process.stdout.close()
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
