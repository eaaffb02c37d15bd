"""Real encoded media as RTP packets, for the recorder's tests and bench: VP8 from aiortc's encoder (libvpx)
and Opus from its Opus encoder, packetized as a browser would send them (one frame per RTP timestamp, the
marker bit on a frame's last packet)."""

from __future__ import annotations

import fractions
import math
import struct
from collections.abc import Iterator

import av
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

VIDEO_PT, AUDIO_PT = 96, 111


def vp8_frames(count: int, width: int = 640, height: int = 480) -> list[list[bytes]]:
    """``count`` frames of moving video, each as its RTP payloads (the first a keyframe)."""
    encoder = Vp8Encoder()
    frames = []
    for index in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        row = bytes((x + index * 7) % 256 for x in range(width))  # something that moves, frame to frame
        for plane, (w, h) in zip(
            frame.planes,
            ((width, height), (width // 2, height // 2)) + ((width // 2, height // 2),),
            strict=True,
        ):
            line = row[:w].ljust(plane.line_size, b"\x80")
            plane.update(line * h)
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index == 0)
        frames.append(payloads)
    return frames


def opus_frames(count: int) -> list[bytes]:
    """``count`` 20 ms Opus frames of a tone."""
    encoder = OpusEncoder()
    frames = []
    for index in range(count):
        tone = [int(math.sin(2 * math.pi * 440 * (i + index * 960) / 48000) * 8000) for i in range(960)]
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(struct.pack(f"<{2 * 960}h", *(v for v in tone for _ in range(2))))
        frame.sample_rate, frame.pts = 48000, index * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, _ = encoder.encode(frame)
        frames.extend(payloads)
    return frames


class RtpStream:
    """Packetizes frames for one SSRC, continuing sequence numbers and timestamps."""

    def __init__(self, ssrc: int, payload_type: int, clock_rate: int, frame_ticks: int) -> None:
        self.ssrc, self.payload_type, self.frame_ticks = ssrc, payload_type, frame_ticks
        self.clock_rate = clock_rate
        self.seq = 1000
        self.timestamp = 12345

    def packets(self, payloads: list[bytes]) -> Iterator[bytes]:
        for index, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self.payload_type,
                marker=int(index == len(payloads) - 1),
                sequence_number=self.seq,
                timestamp=self.timestamp,
                ssrc=self.ssrc,
                payload=payload,
            )
            self.seq = (self.seq + 1) & 0xFFFF
            yield packet.serialize()
        self.timestamp = (self.timestamp + self.frame_ticks) & 0xFFFFFFFF
