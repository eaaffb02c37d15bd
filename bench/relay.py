"""Media relay: streams and meetings per core of the encoded passthrough (``media.MediaRooms``) against
aiortc's decode/re-encode ``MediaRelay``, the latency the relay adds, and the frames it fails to deliver
whole.

Runs, each with the server in its own process on the event loop ``tsunagu serve`` runs (``web.serving``;
``--loop asyncio`` for the other) and the load generator (bench/relay_load.py) in this one, over loopback
127.0.0.1 (run it inside ``unshare --net``, like the tests):

- passthrough: N rooms of one publisher (640×480@30 VP8, ~1 Mbps, encoded once beforehand and looped) and
  one subscriber; the full-load latency and frame loss are taken here;
- transcode: the same through aiortc's ``MediaRelay`` (the server decodes and re-encodes), fewer streams;
- latency: passthrough with fewer streams, the server well below a core;
- meeting: M rooms where both seats send their camera and receive the other's, the subscribers reporting as
  browsers do (receiver reports, REMB, NACKs for ~1 % of packets answered over RTX).

Server CPU is utime + stime of its process (/proc) over a window in which every stream flows. Streams per core
= frames delivered whole in the window ÷ 30 ÷ server CPU seconds (N ÷ cores busy when all keep up; the work
actually done per CPU second when the box is too busy for that); meetings per core the same ÷ 2.
``delivered_frame_loss_pct``: frames sent in the window and not delivered whole within a second after it.

Targets: ``passthrough_streams_per_core`` ≥ 100 (aim 150), ``relay_ratio`` ≥ 15, ``added_latency_p99_ms``
< 10, ``full_load_latency_p99_ms`` < 10, ``delivered_frame_loss_pct`` < 0.5, every stream flowing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass

from bench.relay_load import FPS, LoadGenerator, encoded_frames
from bench.relay_server import children_cpu_seconds, cpu_seconds, server_main
from web import serving

GRACE = 1.0  # seconds after the window for its last frames to arrive


@dataclass
class Figures:
    rooms: int
    streams: int
    flowing: int
    wall: float
    server_cpu: float
    server_system_cpu: float  # of server_cpu, in the kernel (socket calls)
    children_cpu: float  # the server's child processes (the recorder's writers), not in server_cpu
    loadgen_cpu: float
    max_frame_gap_ms: float
    latencies: list[float]
    frames_sent: int  # in the window
    frames_delivered: int  # of those, delivered whole
    frames_skipped: int  # in the window, by publishers of a late load generator (never sent)
    counters: dict[str, int]  # the server's relay counters over the window (passthrough)

    @property
    def streams_per_core(self) -> float:
        """Streams' worth of whole frames delivered per server CPU second."""
        return self.frames_delivered / FPS / self.server_cpu if self.server_cpu > 0 else float("inf")

    @property
    def loss_pct(self) -> float:
        return 100 * (1 - self.frames_delivered / self.frames_sent) if self.frames_sent else float("nan")

    def per_s(self, counter: str) -> float:
        return self.counters.get(counter, 0) / self.wall


async def server_counters(generator: LoadGenerator) -> dict[str, int]:
    async with generator._lock:
        generator.conn.send(("counters",))
        counters: dict[str, int] = await asyncio.to_thread(generator.conn.recv)
    return counters


async def run(
    mode: str, rooms: int, seconds: float, frames: list[list[bytes]], loop: serving.Loop
) -> Figures:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server_mode = mode if mode in ("transcode", "recording") else "passthrough"
    server = context.Process(target=server_main, args=(theirs, server_mode, loop), daemon=True)
    server.start()
    generator = LoadGenerator(ours, frames)
    tasks: list[asyncio.Task[None]] = []
    try:
        for index in range(rooms):
            await generator.add_room(index, meeting=mode == "meeting", matched=mode != "transcode")
        tasks = [asyncio.ensure_future(generator.publish()), asyncio.ensure_future(generator.housekeeping())]
        for _ in range(150):  # up to 30 s for every stream's first frame
            if all(flow.last_frame_at for flow in generator.flows):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # warm up: keyframes, rates settled
        assert server.pid is not None
        for flow in generator.flows:
            flow.max_gap = 0.0
        counters0 = await server_counters(generator)
        generator.measuring = True
        skipped0 = generator.skipped
        wall0, cpu0, own0 = time.perf_counter(), cpu_seconds(server.pid), time.process_time()
        children0 = children_cpu_seconds(server.pid)
        await asyncio.sleep(seconds)
        wall = time.perf_counter() - wall0
        user1, system1 = cpu_seconds(server.pid)
        children1 = children_cpu_seconds(server.pid)
        own = time.process_time() - own0
        generator.measuring = False
        skipped = generator.skipped - skipped0
        counters1 = await server_counters(generator)
        now = time.perf_counter()
        gaps = [
            max(f.max_gap, now - f.last_frame_at) if f.last_frame_at else float("inf")
            for f in generator.flows
        ]
        await asyncio.sleep(GRACE)
        return Figures(
            rooms=rooms,
            streams=len(generator.flows),
            flowing=sum(gap < 1.0 for gap in gaps),
            wall=wall,
            server_cpu=user1 + system1 - sum(cpu0),
            server_system_cpu=system1 - cpu0[1],
            children_cpu=children1 - children0,
            loadgen_cpu=own,
            max_frame_gap_ms=max(gaps) * 1000,
            latencies=generator.latencies,
            frames_sent=sum(f.sent_in_window for f in generator.flows),
            frames_delivered=sum(f.delivered_in_window for f in generator.flows),
            frames_skipped=skipped,
            counters={name: counters1[name] - counters0.get(name, 0) for name in counters1},
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ours.send(("stop",))
        await asyncio.to_thread(ours.recv)
        await generator.close()
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


def measure(mode: str, rooms: int, seconds: float, frames: list[list[bytes]], loop: serving.Loop) -> Figures:
    """One run, the load generator on the same kind of loop as the server (lean on either)."""
    with asyncio.Runner(loop_factory=serving.loop_factory(loop)) as runner:
        return runner.run(run(mode, rooms, seconds, frames, loop))


def percentile_ms(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def passthrough_lines(name: str, figures: Figures) -> dict[str, float | int]:
    return {
        f"{name}_streams": figures.streams,
        f"{name}_streams_flowing": figures.flowing,
        f"{name}_server_cpu_fraction": figures.server_cpu / figures.wall,
        f"{name}_server_kernel_share": figures.server_system_cpu / max(figures.server_cpu, 1e-9),
        f"{name}_loadgen_cpu_fraction": figures.loadgen_cpu / figures.wall,
        f"{name}_max_frame_gap_ms": figures.max_frame_gap_ms,
        f"{name}_frames_delivered_per_s": figures.frames_delivered / figures.wall,
        f"{name}_loadgen_frames_skipped_per_s": figures.frames_skipped / figures.wall,
        f"{name}_server_packets_forwarded_per_s": figures.per_s("packets_forwarded"),
        f"{name}_server_cpu_us_per_packet": 1e6
        * figures.server_cpu
        / max(1, figures.counters.get("packets_forwarded", 0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=100, help="passthrough streams (rooms)")
    parser.add_argument("--meetings", type=int, default=50, help="meetings (two cameras each)")
    parser.add_argument("--transcode-streams", type=int, default=4, help="MediaRelay streams")
    parser.add_argument("--latency-streams", type=int, default=20, help="streams while latency is taken")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default=serving.LOOP, help="the event loop")
    args = parser.parse_args(argv)
    logging.getLogger("aiortc").setLevel(logging.ERROR)

    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# loop: {args.loop}")
    frames = encoded_frames(1.0, args.bitrate)
    packets = sum(len(f) for f in frames)
    size = sum(len(p) for f in frames for p in f)
    rate = FPS / len(frames)
    print(
        f"# camera: {len(frames)} frames, {packets * rate:.0f} packets/s, {size * 8 * rate / 1000:.0f} kbit/s"
    )

    passthrough = measure("passthrough", args.streams, args.seconds, frames, args.loop)
    transcode = measure("transcode", args.transcode_streams, args.seconds, frames, args.loop)
    # Latency at full load mostly measures how far behind a saturated box is; it is also taken apart, with the
    # server well below a core (on a 2-core box the load generator needs about as much CPU as the server).
    latency = measure("passthrough", args.latency_streams, args.seconds / 2, frames, args.loop)
    meeting = measure("meeting", args.meetings, args.seconds, frames, args.loop)

    figures: dict[str, float | int] = {
        **passthrough_lines("passthrough", passthrough),
        "passthrough_streams_per_core": passthrough.streams_per_core,
        "full_load_latency_p50_ms": percentile_ms(passthrough.latencies, 50),
        "full_load_latency_p99_ms": percentile_ms(passthrough.latencies, 99),
        "delivered_frame_loss_pct": passthrough.loss_pct,
        "transcode_streams": transcode.streams,
        "transcode_streams_flowing": transcode.flowing,
        "transcode_server_cpu_fraction": transcode.server_cpu / transcode.wall,
        "transcode_frames_delivered_per_s": transcode.frames_delivered / transcode.wall,
        "transcode_streams_per_core": transcode.streams_per_core,
        "relay_ratio": passthrough.streams_per_core / transcode.streams_per_core,
        "latency_streams": latency.streams,
        "latency_streams_flowing": latency.flowing,
        "added_latency_p50_ms": percentile_ms(latency.latencies, 50),
        "added_latency_p99_ms": percentile_ms(latency.latencies, 99),
        "latency_samples": len(latency.latencies),
        "meetings": meeting.rooms,
        **passthrough_lines("meeting", meeting),
        "meeting_nacks_per_s": meeting.per_s("nacks_received"),
        "meeting_retransmissions_per_s": meeting.per_s("retransmissions"),
        "meeting_receiver_reports_per_s": meeting.per_s("receiver_reports_received"),
        "meeting_rembs_per_s": meeting.per_s("bitrate_reports_received"),
        "meeting_sender_reports_per_s": meeting.per_s("sender_reports_sent"),
        "meeting_latency_p99_ms": percentile_ms(meeting.latencies, 99),
        "meeting_delivered_frame_loss_pct": meeting.loss_pct,
        "meetings_per_core": meeting.streams_per_core / 2,
    }
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    met = (
        all(run.flowing == run.streams for run in (passthrough, transcode, latency, meeting))
        and figures["passthrough_streams_per_core"] >= 100
        and figures["relay_ratio"] >= 15
        and figures["added_latency_p99_ms"] < 10
        and figures["full_load_latency_p99_ms"] < 10
        and figures["delivered_frame_loss_pct"] < 0.5
    )
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"targets_met: {'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
