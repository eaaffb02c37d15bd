"""Recording (レコログ): what writing a 640×480@30 VP8 stream to WebM costs, passthrough (depacketize and mux,
``recordings.recorder``) against decode + re-encode in the same run, and the relay's forwarding capacity with
every stream recorded against none recorded.

- ``passthrough_core_pct_per_stream``: CPU (this process's sink on the loop and the node's writer child
  process, its one-off start-up excluded: it is started once per node) per second of one stream written, in
  % of a core. Streams are fed faster than real time; the
  figure is work done, not wall time. Target ≤ 2.
- ``transcode_core_pct_per_stream``: decoding and re-encoding the same frames (aiortc's VP8 decoder and
  encoder), per second of one stream, in % of a core: what a recorder that transcodes would cost.
- ``relay_capacity_ratio_recording``: streams per core of the relay (bench/relay.py's load generator and
  server process) with every room recorded ÷ with none, same rooms, same run. Target ≥ 0.8. The relay's
  process is what forwarding is bound by (one event loop: one core); the recorder's writer is a child
  process of it (one per node, shared by every recording), on the other cores.
  ``relay_capacity_ratio_recording_all_cpu`` counts its CPU too
  (streams per core of relay and writers together), for what recording costs the box as a whole.

Run it inside ``unshare --net`` (loopback only), like the tests: ``python -m bench.recording``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from bench.relay import Figures, measure
from bench.relay_load import FPS, encoded_frames
from bench.relay_server import cpu_seconds
from recordings.pool import WriterProcess
from recordings.recorder import RoomRecording
from web import serving


def packets(frames: list[list[bytes]], ssrc: int, seconds: float) -> list[bytes]:
    """``seconds`` of the looped frames as RTP packets of one stream."""
    out = []
    seq, timestamp = 0, 0
    for index in range(int(seconds * FPS)):
        payloads = frames[index % len(frames)]
        for part, payload in enumerate(payloads):
            marker = int(part == len(payloads) - 1)
            packet = RtpPacket(
                payload_type=96,
                marker=marker,
                sequence_number=seq,
                timestamp=timestamp,
                ssrc=ssrc,
                payload=payload,
            )
            out.append(packet.serialize())
            seq = (seq + 1) & 0xFFFF
        timestamp += 90000 // FPS
    return out


async def passthrough(frames: list[list[bytes]], streams: int, seconds: float) -> float:
    """% of a core per recorded stream, depacketizing and muxing (no decoding)."""
    feeds = [packets(frames, 1000 + n, seconds) for n in range(streams)]
    writer = WriterProcess(asyncio.get_running_loop())
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as spool:
        failures: list[str] = []
        await RoomRecording(Path(spool) / "warm", failures.append, writer).stop()  # started, PyAV imported
        recording = RoomRecording(Path(spool) / "room", failures.append, writer, queue_packets=1_000_000)
        cpu0 = time.process_time() + sum(cpu_seconds(writer.pid))
        for index in range(max(len(feed) for feed in feeds)):  # interleaved, as a room's streams arrive
            for n, feed in enumerate(feeds):
                if index < len(feed):
                    seat, mline = ("host", "guest")[n % 2], n // 2 % 2  # camera and screen of both seats
                    recording.packet(seat, mline, "video", feed[index], 12, 0.0)
        finished = await recording.stop()  # every file closed by the writer
        cpu = time.process_time() + sum(cpu_seconds(writer.pid)) - cpu0
        await writer.aclose()
        assert not failures and not finished.damaged, failures
        assert len(finished.tracks) == min(streams, 4)
    return 100 * cpu / (streams * seconds)


def _us_per_packet(figures: Figures) -> float:
    """The relay process's CPU per packet it forwarded (µs): what recording adds on the loop's process."""
    return 1e6 * figures.server_cpu / max(1, figures.counters.get("packets_forwarded", 0))


def transcode(frames: list[list[bytes]], seconds: float) -> float:
    """% of a core per stream, decoding and re-encoding every frame (what a transcoding recorder does)."""
    decoder, encoder = Vp8Decoder(), Vp8Encoder()
    encoder.target_bitrate = 1_000_000
    count = int(seconds * FPS)
    cpu0 = time.process_time()
    for index in range(count):
        payloads = frames[index % len(frames)]
        data = b"".join(_vp8_data(p) for p in payloads)
        for picture in decoder.decode(JitterFrame(data=data, timestamp=index * 3000)):
            encoder.encode(picture, index == 0)
    return 100 * (time.process_time() - cpu0) / seconds


def _vp8_data(payload: bytes) -> bytes:
    from recordings.webm import vp8_payload

    found = vp8_payload(payload)
    assert found is not None
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=4, help="streams recorded at once (passthrough)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of each stream written")
    parser.add_argument("--transcode-seconds", type=float, default=3.0)
    parser.add_argument("--relay-streams", type=int, default=20, help="rooms in the relay runs")
    parser.add_argument("--relay-seconds", type=float, default=5.0, help="measured window per relay run")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default=serving.LOOP)
    args = parser.parse_args(argv)
    logging.getLogger("aiortc").setLevel(logging.ERROR)
    started = time.monotonic()
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    frames = encoded_frames(1.0, 1_000_000)
    packets_per_s = sum(len(f) for f in frames) * FPS / len(frames)
    print(f"# camera: 640x480@{FPS} VP8, {packets_per_s:.0f} packets/s")

    with asyncio.Runner(loop_factory=serving.loop_factory(args.loop)) as runner:
        passthrough_pct = runner.run(passthrough(frames, args.streams, args.seconds))
    transcode_pct = transcode(frames, args.transcode_seconds)
    plain = measure("passthrough", args.relay_streams, args.relay_seconds, frames, args.loop)
    recorded = measure("recording", args.relay_streams, args.relay_seconds, frames, args.loop)
    ratio = recorded.streams_per_core / plain.streams_per_core
    recorded_all = recorded.frames_delivered / FPS / (recorded.server_cpu + recorded.children_cpu)
    plain_all = plain.frames_delivered / FPS / (plain.server_cpu + plain.children_cpu)

    figures: dict[str, float | int] = {
        "passthrough_core_pct_per_stream": passthrough_pct,
        "transcode_core_pct_per_stream": transcode_pct,
        "transcode_to_passthrough_ratio": transcode_pct / passthrough_pct,
        "relay_streams": plain.streams,
        "relay_streams_flowing": plain.flowing,
        "relay_streams_per_core": plain.streams_per_core,
        "relay_recording_streams_flowing": recorded.flowing,
        "relay_max_frame_gap_ms": plain.max_frame_gap_ms,
        "relay_recording_max_frame_gap_ms": recorded.max_frame_gap_ms,
        "relay_recording_streams_per_core": recorded.streams_per_core,
        "relay_server_cpu_us_per_packet": _us_per_packet(plain),
        "relay_recording_server_cpu_us_per_packet": _us_per_packet(recorded),
        "relay_recording_writers_cpu_fraction": recorded.children_cpu / recorded.wall,
        "relay_capacity_ratio_recording": ratio,
        "relay_capacity_ratio_recording_all_cpu": recorded_all / plain_all,
        "seconds": time.monotonic() - started,
    }
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    met = passthrough_pct <= 2 and ratio >= 0.8 and recorded.flowing == recorded.streams
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"targets_met: {'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
