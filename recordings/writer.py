"""The recorder's child process: every recording of this node, read from one pipe, muxed into WebM files.

``python -m recordings.writer <socket fd> <parent pid>``, started once per node (lazily, at the first
recording) by :class:`recordings.pool.WriterProcess`. Muxing and disk writes happen here, in a process of
their own, so that they never take the relay's event loop (nor its GIL) away from forwarding. The parent
batches frames (a :data:`FRAME` header: recording id, seat, m-line, RTP header length, arrival, length;
then the packet) and writes them to this process's stdin. Control frames use the seat byte:

- :data:`START`: a new recording (payload: origin in ms, a NUL, its spool directory); its directory's lock
  (an open file the parent has locked) comes over the socket (``SCM_RIGHTS``) just before;
- :data:`SYNC`: answer ``("synced", id)`` once everything of that recording before it is written (tests);
- :data:`STOP`: finish that recording's files, release its lock, answer ``("finished", id, tracks, damaged)``.

It answers on its stdout with length-prefixed pickled :data:`Message` tuples, each naming its recording:
``("keyframe", id, seat, mline)`` (the relay stops asking), ``("failed", id, reason)`` (later packets of
that recording are dropped; the others go on). At the end of stdin every open recording is finished.

It holds each spool directory's lock until that recording's files are finished, and dies with its parent
(``PR_SET_PDEATHSIG``): a node killed with SIGKILL leaves files flushed cluster by cluster, which the next
start recovers (``Recorder.recover``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pickle
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from core.errors import N_
from recordings.webm import TrackWriter

# recording id, seat, m-line, RTP header length, arrival (ms since the recording's origin), length
FRAME = struct.Struct("<IBBBdI")
SEATS = ("host", "guest")
TRACKS = {0: "camera", 1: "screen", 2: "audio"}  # by m-line (media.peer.LAYOUT)
STOP = 0xFF  # in the seat byte: finish the recording's files
SYNC = 0xFE  # in the seat byte: answer ("synced", id) once everything before is written
START = 0xFD  # in the seat byte: a new recording; payload b"<origin ms>\0<directory>"
LENGTH = struct.Struct("<I")
READ = 1 << 20
PR_SET_PDEATHSIG = 1

DISK_FULL = N_("Recording stopped: the disk is full. The call goes on.")
UNWRITABLE = N_("Recording stopped: the recording could not be written. The call goes on.")

Message = tuple[Any, ...]


def reason(exc: BaseException) -> str:
    return DISK_FULL if isinstance(exc, OSError) and exc.errno == errno.ENOSPC else UNWRITABLE


def _die_with(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


class Recording:
    """One recording's tracks, its spool directory and the lock on it."""

    def __init__(self, directory: Path, origin_ms: int, lock: int) -> None:
        self.directory = directory
        self.origin_ms = origin_ms
        self.lock = lock
        self.tracks: dict[tuple[int, int], TrackWriter] = {}
        self.broken = ""


class Writer:
    def __init__(self, out: int, fds: socket.socket) -> None:
        self.out = out
        self.fds = fds
        self.recordings: dict[int, Recording] = {}

    def send(self, message: Message) -> None:
        data = pickle.dumps(message)
        view = memoryview(LENGTH.pack(len(data)) + data)
        while view:
            view = view[os.write(self.out, view) :]

    def start(self, rid: int, payload: bytes) -> None:
        _, fds, _, _ = socket.recv_fds(self.fds, 1, 1)  # sent just before the START frame
        lock = fds[0] if fds else -1
        try:
            origin, directory = payload.split(b"\0", 1)
            recording = Recording(Path(os.fsdecode(directory)), int(origin), lock)
        except ValueError:  # a malformed start: nothing to write, and said so
            self.send(("failed", rid, UNWRITABLE))
            self.send(("finished", rid, [], UNWRITABLE))
            if lock >= 0:
                os.close(lock)
            return
        self.recordings[rid] = recording

    def packet(self, rid: int, seat: int, mline: int, header: int, arrived: float, data: bytes) -> None:
        recording = self.recordings.get(rid)
        if recording is None or recording.broken or seat >= len(SEATS) or mline not in TRACKS:
            return
        key = (seat, mline)
        writer = recording.tracks.get(key)
        if writer is None:
            kind = "audio" if mline == 2 else "video"
            name = f"{SEATS[seat]}-{TRACKS[mline]}"
            writer = recording.tracks[key] = TrackWriter(recording.directory, name, kind, recording.origin_ms)
        waiting = writer.waiting_keyframe
        try:
            writer.packet(data, header, arrived)
        except Exception as exc:  # this recording only: the others go on
            recording.broken = reason(exc)
            print(f"recording.write_failed {recording.directory}: {exc!r}", file=sys.stderr)
            self.send(("failed", rid, recording.broken))
            return
        if waiting and not writer.waiting_keyframe:
            self.send(("keyframe", rid, seat, mline))

    def finish(self, rid: int) -> None:
        recording = self.recordings.pop(rid, None)
        if recording is None:
            return
        tracks = []
        for (seat, mline), writer in recording.tracks.items():
            try:
                result = writer.close()
            except Exception as exc:
                recording.broken = recording.broken or reason(exc)
                continue
            if result is not None:
                path = str(result.path)
                tracks.append(
                    (SEATS[seat], TRACKS[mline], path, result.start_ms, result.end_ms, result.frames)
                )
        if recording.lock >= 0:
            os.close(recording.lock)  # lets a recovering node know these files are finished
        self.send(("finished", rid, tracks, recording.broken))

    def finish_all(self) -> None:
        for rid in list(self.recordings):
            self.finish(rid)


def run(writer: Writer, inp: int) -> None:
    """Read frames until the end of ``inp``."""
    pending = bytearray()
    while True:
        chunk = os.read(inp, READ)
        if not chunk:
            return
        pending += chunk
        view = memoryview(pending)
        at, end = 0, len(pending)
        try:
            while end - at >= FRAME.size:
                rid, seat, mline, header, arrived, length = FRAME.unpack_from(view, at)
                if end - at - FRAME.size < length:
                    break
                start = at + FRAME.size
                at = start + length
                if seat == START:
                    writer.start(rid, bytes(view[start:at]))
                elif seat == STOP:
                    writer.finish(rid)
                elif seat == SYNC:
                    writer.send(("synced", rid))
                else:
                    writer.packet(rid, seat, mline, header, arrived, bytes(view[start:at]))
        finally:
            view.release()
        del pending[:at]


def main(argv: list[str]) -> int:
    fds, parent = socket.socket(fileno=int(argv[0])), int(argv[1])
    _die_with(parent)
    out = os.dup(1)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the answers
    writer = Writer(out, fds)
    try:
        run(writer, 0)
    finally:
        writer.finish_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
