"""RTP packets to WebM files without decoding: VP8 frames reassembled from their RTP payloads, Opus packets
as they come, muxed with PyAV (``av``) with the crash-safe options of the notes on recording.

Runs in the recorder's child process (``recordings.writer``), never in the event loop's process.
Timestamps are milliseconds since the recording's origin: a stream's first packet is placed by its arrival
time, later ones by their RTP timestamps, and a new stream (a camera restarted, a reconnect: a new SSRC) is
placed by its arrival again, so gaps stay gaps in time, not jumps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

# Written cluster by cluster, each flushed: a process killed with SIGKILL leaves a file that plays up to
# within about a second of the kill (default options buffer everything: 0 bytes). See notes/recording.md.
MUXER_OPTIONS = {"cluster_time_limit": "1000", "flush_packets": "1"}
MS = Fraction(1, 1000)
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 48000, 0, 0)  # RFC 7845 5.1, stereo
MAX_FRAME_BYTES = 4 * 1024 * 1024  # a VP8 frame larger than this is broken input, not video


@dataclass
class TrackResult:
    path: Path
    start_ms: int  # its first frame, in ms since the recording's origin (the file's time 0)
    end_ms: int  # its last frame, in ms since the recording's origin
    frames: int


def vp8_payload(payload: bytes) -> tuple[bytes, bool] | None:
    """The VP8 data of an RTP payload (RFC 7741 4.2) and whether it starts a frame; None if malformed."""
    if not payload:
        return None
    first = payload[0]
    offset = 1
    if first & 0x80:  # X: an extension byte follows
        if len(payload) < 2:
            return None
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                return None
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/KEYIDX
            offset += 1
    if offset >= len(payload):
        return None
    return payload[offset:], bool(first & 0x10) and (first & 0x07) == 0


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe (RFC 6386 9.1), None for an interframe or garbage."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack_from("<HH", frame, 6)
    return width & 0x3FFF, height & 0x3FFF


class TrackWriter:
    """One track's WebM file: ``kind`` ``video`` (VP8) or ``audio`` (Opus).

    The file is made when its first frame comes, named ``<when>-<name>.webm`` in ``directory``: ``when``
    is the wall time (ms) of its first frame, ``origin_ms`` plus the frame's place; its timestamps start at
    0 there (players then agree on where it starts)."""

    def __init__(self, directory: Path, name: str, kind: str, origin_ms: int) -> None:
        self.directory = directory
        self.name = name
        self.origin_ms = origin_ms
        self.path = directory / f"{origin_ms}-{name}.webm"  # named for real once its first frame comes
        self.kind = kind
        self.clock_rate = 90000 if kind == "video" else 48000
        self._out: Any = None
        self._stream: Any = None
        self._ssrc: int | None = None
        self._base_ts = 0
        self._base_ms = 0.0
        self._last_pts = -1
        self._start_ms: int | None = None
        self.frames = 0
        self.waiting_keyframe = kind == "video"
        self._frame_ts: int | None = None
        self._parts: list[tuple[int, bytes, bool]] = []  # (sequence number, VP8 data, starts the frame)
        self._frame_bytes = 0

    def packet(self, data: bytes, header: int, arrived_ms: float) -> None:
        """One RTP packet (``header`` bytes of header), arrived ``arrived_ms`` after the origin."""
        end = len(data) - data[-1] if data[0] & 0x20 else len(data)  # padding
        if end <= header:
            return
        seq, timestamp, ssrc = struct.unpack_from("!HLL", data, 2)
        if ssrc != self._ssrc:  # a new stream: placed by its arrival, so a pause stays a pause
            self._flush_parts()
            self._ssrc, self._base_ts = ssrc, timestamp
            self._base_ms = max(arrived_ms, self._last_pts + 1.0)
            self.waiting_keyframe = self.kind == "video"
        elapsed = ((timestamp - self._base_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        pts = round(self._base_ms + elapsed * 1000 / self.clock_rate)
        payload = data[header:end]
        if self.kind == "audio":
            self._write(payload, pts, True)
            return
        if timestamp != self._frame_ts:
            self._flush_parts()  # the previous frame never got its last packet: lost
            self._frame_ts = timestamp
        found = vp8_payload(payload)
        if found is None:
            self._parts = []
            self.waiting_keyframe = True
            return
        self._parts.append((seq, found[0], found[1]))
        self._frame_bytes += len(found[0])
        if data[1] & 0x80:  # marker: the frame's last packet
            self._complete(pts)

    def _flush_parts(self) -> None:
        if self._parts:
            self.waiting_keyframe = True  # a frame went missing: what follows refers to it
        self._parts, self._frame_bytes, self._frame_ts = [], 0, None

    def _complete(self, pts: int) -> None:
        parts = sorted(self._parts, key=lambda part: (part[0] - self._parts[0][0]) & 0xFFFF)
        size = self._frame_bytes
        self._parts, self._frame_bytes, self._frame_ts = [], 0, None
        contiguous = all((parts[i + 1][0] - parts[i][0]) & 0xFFFF == 1 for i in range(len(parts) - 1))
        if not parts[0][2] or not contiguous or size > MAX_FRAME_BYTES:
            self.waiting_keyframe = True
            return
        frame = b"".join(part[1] for part in parts)
        keyframe = not frame[0] & 1
        if self.waiting_keyframe and not keyframe:
            return
        self.waiting_keyframe = False
        self._write(frame, pts, keyframe)

    def _write(self, data: bytes, pts: int, keyframe: bool) -> None:
        if self._out is None and not self._open(data, pts):
            return
        pts = max(pts, self._last_pts + 1)
        start = self._start_ms or 0
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.time_base = MS
        packet.pts = packet.dts = pts - start
        packet.is_keyframe = keyframe
        self._out.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def _open(self, first: bytes, pts: int) -> bool:
        size = vp8_size(first) if self.kind == "video" else (0, 0)
        if size is None:
            return False
        self._start_ms = pts
        self.path = self.directory / f"{self.origin_ms + pts}-{self.name}.webm"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = av.open(str(self.path), "w", format="webm", options=MUXER_OPTIONS)
        stream: Any
        try:
            if self.kind == "video":
                # A stream without a codec context: add_stream would open a VP8 encoder (libvpx allocates
                # ~8 MB of frame buffers at 640×480), which passthrough never uses.
                stream = out.add_mux_stream("vp8", rate=30, width=size[0], height=size[1])
            else:
                stream = out.add_stream("libopus", rate=48000)
                stream.codec_context.extradata = OPUS_HEAD
            stream.time_base = MS
        except BaseException:
            out.close()
            raise
        self._out, self._stream = out, stream
        return True

    def close(self) -> TrackResult | None:
        """Finish the file (cues, duration); None when nothing was written."""
        out, self._out = self._out, None
        if out is None:
            return None
        out.close()
        start = self._start_ms or 0
        return TrackResult(self.path, start, max(start, self._last_pts), self.frames)


def remux(source: Path, target: Path) -> tuple[int, int] | None:
    """Copy the packets of a file a killed process left open (no duration, no cues) into a finished one;
    its first and last timestamps (ms), or None when nothing in it can be read."""
    first: int | None = None
    last = 0
    try:
        inp = av.open(str(source), "r")
    except av.FFmpegError:
        return None
    with inp:
        if not inp.streams:
            return None
        stream_in = inp.streams[0]
        with av.open(str(target), "w", format="webm") as out:
            stream_out = out.add_stream_from_template(stream_in)
            try:
                for packet in inp.demux(stream_in):
                    if packet.dts is None or packet.size == 0:
                        continue
                    ms = int(packet.pts * packet.time_base * 1000) if packet.pts is not None else last
                    first = ms if first is None else first
                    last = max(last, ms)
                    packet.stream = stream_out
                    out.mux(packet)
            except av.FFmpegError:
                pass  # the cut-off end of the file: keep what came before it
    return None if first is None else (first, last)
