"""The recorder's child process: one recording's packets, read from a pipe, muxed into WebM files.

``python -m recordings.writer <directory> <origin_ms> <lock fd> <parent pid>``, started by
:class:`recordings.recorder.RoomRecording`. Muxing and disk writes happen here, in a process of their own,
so that they never take the relay's event loop (nor its GIL) away from forwarding. The parent batches the
packets (:data:`PACKET` headers, each followed by the packet) and writes them to this process's stdin; this
process answers on its stdout with length-prefixed pickled :data:`Message` tuples:

- ``("keyframe", seat, mline)``: the track has its first keyframe written (the relay stops asking);
- ``("failed", reason)``: writing failed (disk full, unwritable); later packets are dropped;
- ``("synced",)``: every packet sent before a :data:`SYNC` is written (tests);
- ``("finished", tracks, damaged)``: after :data:`STOP` (or the end of stdin), every file closed.

It holds the spool directory's lock (inherited from the parent) until its files are finished, and dies with
its parent (``PR_SET_PDEATHSIG``): a node killed with SIGKILL leaves files flushed cluster by cluster, which
the next start recovers (``Recorder.recover``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pickle
import signal
import struct
import sys
from pathlib import Path
from typing import Any

from core.errors import N_
from recordings.webm import TrackWriter

PACKET = struct.Struct("<BBBdI")  # seat, m-line, RTP header length, arrival (ms since origin), length
SEATS = ("host", "guest")
TRACKS = {0: "camera", 1: "screen", 2: "audio"}  # by m-line (media.peer.LAYOUT)
STOP = 0xFF  # in the seat byte: finish the files and exit
SYNC = 0xFE  # in the seat byte: answer ("synced",) once everything before is written
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


class Writer:
    def __init__(self, directory: Path, origin_ms: int, out: int) -> None:
        self.directory = directory
        self.origin_ms = origin_ms
        self.out = out
        self.tracks: dict[tuple[int, int], TrackWriter] = {}
        self.broken = ""

    def send(self, message: Message) -> None:
        data = pickle.dumps(message)
        view = memoryview(LENGTH.pack(len(data)) + data)
        while view:
            view = view[os.write(self.out, view) :]

    def packet(self, seat: int, mline: int, header: int, arrived: float, data: bytes) -> None:
        if self.broken or seat >= len(SEATS) or mline not in TRACKS:
            return
        key = (seat, mline)
        writer = self.tracks.get(key)
        if writer is None:
            kind = "audio" if mline == 2 else "video"
            name = f"{SEATS[seat]}-{TRACKS[mline]}"
            writer = self.tracks[key] = TrackWriter(self.directory, name, kind, self.origin_ms)
        waiting = writer.waiting_keyframe
        try:
            writer.packet(data, header, arrived)
        except Exception as exc:
            self.broken = reason(exc)
            print(f"recording.write_failed {self.directory}: {exc!r}", file=sys.stderr)
            self.send(("failed", self.broken))
            return
        if waiting and not writer.waiting_keyframe:
            self.send(("keyframe", seat, mline))

    def finish(self) -> None:
        tracks = []
        for (seat, mline), writer in self.tracks.items():
            try:
                result = writer.close()
            except Exception as exc:
                self.broken = self.broken or reason(exc)
                continue
            if result is not None:
                path = str(result.path)
                tracks.append(
                    (SEATS[seat], TRACKS[mline], path, result.start_ms, result.end_ms, result.frames)
                )
        self.send(("finished", tracks, self.broken))


def run(writer: Writer, inp: int) -> None:
    """Read packets until :data:`STOP` or the end of ``inp``."""
    pending = bytearray()
    while True:
        chunk = os.read(inp, READ)
        if not chunk:
            return
        pending += chunk
        view = memoryview(pending)
        at, end = 0, len(pending)
        try:
            while end - at >= PACKET.size:
                seat, mline, header, arrived, length = PACKET.unpack_from(view, at)
                if end - at - PACKET.size < length:
                    break
                start = at + PACKET.size
                at = start + length
                if seat == STOP:
                    return
                if seat == SYNC:
                    writer.send(("synced",))
                    continue
                writer.packet(seat, mline, header, arrived, bytes(view[start:at]))
        finally:
            view.release()
        del pending[:at]


def main(argv: list[str]) -> int:
    directory, origin_ms, lock, parent = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    _die_with(parent)
    out = os.dup(1)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the answers
    writer = Writer(directory, origin_ms, out)
    try:
        run(writer, 0)
    finally:
        writer.finish()
        os.close(lock)  # lets a recovering node know these files are finished
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
