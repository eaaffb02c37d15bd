"""Media relay: streams per core of the encoded passthrough (``media.MediaRooms``) against aiortc's
decode/re-encode ``MediaRelay``, and the latency the relay adds.

N rooms, each with one publisher sending a synthetic 640×480@30 VP8 camera at ~1 Mbps and one subscriber,
through the server over loopback 127.0.0.1 (run it inside ``unshare --net``, like the tests). The server runs
in its own process; publishers and subscribers run in this one (the load generator). The load generator is
lean: about one second of frames is encoded once beforehand and looped, packets are built from those
payloads and sent and received through the same synchronous SRTP paths as the server's
(``media.hooks.send_now``/``receive_now``), and subscribers only count packets (no decoding), so that it
starves the server as little as it can on a 2-core box.

The server's CPU time (utime + stime of its process, from /proc) is taken over a window in which every
stream flows; streams per core = N ÷ (server CPU seconds ÷ wall seconds), computed as the frames the
subscribers received in the window ÷ 30 ÷ server CPU seconds (the same when all streams keep up; on a box too
busy for that, the work actually done per CPU second rather than a figure flattered by work left undone).
The same is done for aiortc's ``MediaRelay`` path (the server decodes each publisher's track and re-encodes
it for the subscriber) with fewer streams. Added latency: publisher send → subscriber receive of the same
packet, both in this process, taken in a third run with fewer streams (``--latency-streams``), and also
reported for the full-load run.

The server's own count of forwarded packets and its CPU per forwarded packet are printed too (when it
forwarded more than arrived, the load generator was short of CPU), and the load average before and after
(the figures mean little on a box other jobs keep busy).

Targets: ``passthrough_streams_per_core`` ≥ 100, ``relay_ratio`` ≥ 15, ``added_latency_p99_ms`` < 10.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from struct import pack, unpack_from

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from av import VideoFrame

from media import MediaRooms, MediaSettings, hooks

LOOPBACK = ("127.0.0.1",)
FPS = 30
CLOCK = 90_000
SAMPLE_EVERY = 8  # latency is sampled on packets whose sequence number is a multiple of this


# The server (child process)


async def transcode_answer(
    pcs: dict[tuple[str, str], RTCPeerConnection], relay: object, room: str, seat: str, offer: str
) -> str:
    """aiortc's ordinary path: the host's track is received (decoded), the guest gets it re-encoded."""
    from aiortc.contrib.media import MediaRelay

    from media.peer import LAYOUT, codec_preferences

    assert isinstance(relay, MediaRelay)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs[(room, seat)] = pc
    transceivers = []
    for kind in LAYOUT:
        transceiver = pc.addTransceiver(kind, direction="sendrecv")
        transceiver.setCodecPreferences(codec_preferences(kind))
        transceivers.append(transceiver)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    if seat == "guest":
        host = pcs[(room, "host")]
        transceivers[0].sender.replaceTrack(relay.subscribe(host.getTransceivers()[0].receiver.track))
    hooks.gather_on(transceivers[0].receiver.transport.transport.iceGatherer, LOOPBACK)
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


async def serve(conn: Connection, mode: str) -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rooms = MediaRooms(MediaSettings(host_addresses=LOOPBACK))
    pcs: dict[tuple[str, str], RTCPeerConnection] = {}
    relay: object = None
    if mode == "transcode":
        from aiortc.contrib.media import MediaRelay

        relay = MediaRelay()
    try:
        while True:
            message = await asyncio.to_thread(conn.recv)
            if message[0] == "stop":
                break
            if message[0] == "counters":
                conn.send(vars(rooms.counters()))
                continue
            _, room, seat, offer = message
            if mode == "passthrough":
                answer = await rooms.answer(room, seat, offer)
            else:
                answer = await transcode_answer(pcs, relay, room, seat, offer)
            conn.send(answer)
    finally:
        await rooms.aclose()
        for pc in pcs.values():
            await pc.close()
        conn.send("stopped")


def server_main(conn: Connection, mode: str) -> None:
    asyncio.run(serve(conn, mode))


async def server_forwarded(conn: Connection) -> int:
    """Packets the server has forwarded so far (0 for the transcode path, which keeps no counters)."""
    conn.send(("counters",))
    counters = await asyncio.to_thread(conn.recv)
    return int(counters["packets_forwarded"])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# The load generator (this process)


def encoded_frames(seconds: float, bitrate: int) -> list[list[bytes]]:
    """About ``seconds`` of 640×480 VP8 at ``bitrate``, as RTP payloads per frame; the first is a keyframe.
    As many frames are encoded before them, so that the encoder's rate control has settled."""
    encoder = Vp8Encoder()
    encoder.target_bitrate = bitrate
    frames = []
    width, height = 640, 480
    count = int(seconds * FPS)
    for index in range(2 * count):
        frame = VideoFrame(width, height, "yuv420p")
        luma = bytearray(bytes(range(256)) * (width * height // 256))
        top = (index * 7) % (height - 80)
        for row in range(top, top + 80):  # a moving block of noise: real work for the encoder
            luma[row * width + 100 : row * width + 300] = os.urandom(200)
        frame.planes[0].update(bytes(luma))
        chroma = b"\x80" * (width * height // 4)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = index * CLOCK // FPS
        payloads, _ = encoder.encode(frame, index in (0, count))
        frames.append(payloads)
    return frames[count:]


@dataclass
class Stream:
    """One room: the publisher's and the subscriber's peer connections, as lean as the server's."""

    index: int
    publisher: RTCPeerConnection
    subscriber: RTCPeerConnection
    ssrc: int = 0
    payload_type: int = 96
    transport: object = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    seq: int = 0
    frame: int = 0
    timestamp: int = 0
    sent: dict[int, float] = field(default_factory=dict)
    received: int = 0
    frames: int = 0
    last_frame_at: float = 0.0
    max_gap: float = 0.0


class LoadGenerator:
    def __init__(self, conn: Connection, frames: list[list[bytes]]) -> None:
        self.conn = conn
        self.frames = frames
        self.streams: list[Stream] = []
        self.latencies: list[float] = []
        self.measuring = False

    def peer(self) -> tuple[RTCPeerConnection, list[RTCRtpTransceiver]]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceivers = [pc.addTransceiver(kind, direction="sendrecv") for kind in ("video", "video", "audio")]
        return pc, transceivers

    async def exchange(self, pc: RTCPeerConnection, room: str, seat: str) -> None:
        hooks.gather_on(pc.getTransceivers()[0].receiver.transport.transport.iceGatherer, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        self.conn.send(("answer", room, seat, pc.localDescription.sdp))
        answer = await asyncio.to_thread(self.conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def add_stream(self, index: int) -> Stream:
        publisher, sending = self.peer()
        subscriber, receiving = self.peer()
        stream = Stream(index, publisher, subscriber)
        stream.ssrc = hooks.sender_ssrcs(sending[0].sender)[0]
        stream.seq = (index * 1000) & 0xFFFF

        def on_send(parameters: RTCRtpSendParameters) -> None:
            stream.payload_type = parameters.codecs[0].payloadType or 96
            stream.transport = sending[0].sender.transport
            stream.ready.set()

        def ignore(parameters: RTCRtpSendParameters | RTCRtpReceiveParameters) -> None:
            pass

        hooks.take_over_transceiver(sending[0], on_send, ignore)
        for transceiver in sending[1:] + receiving:
            hooks.take_over_transceiver(transceiver, ignore, ignore)

        def nothing(data: bytes = b"") -> None:
            pass

        def publisher_rtcp(data: bytes) -> None:
            if data[1] == 206 and data[0] & 0x1F == 1:  # PLI: restart the loop at its keyframe
                stream.frame = 0

        def subscriber_rtp(data: bytes) -> None:
            now = time.perf_counter()
            stream.received += 1
            if data[1] & 0x80:  # marker: the last packet of a frame
                stream.frames += 1
                if self.measuring and stream.last_frame_at:
                    stream.max_gap = max(stream.max_gap, now - stream.last_frame_at)
                stream.last_frame_at = now
            seq = unpack_from("!H", data, 2)[0]
            if seq % SAMPLE_EVERY == 0:
                sent = stream.sent.pop(seq, None)
                if sent is not None and self.measuring:
                    self.latencies.append(now - sent)

        hooks.take_over_transport(sending[0].receiver.transport, nothing, publisher_rtcp)
        hooks.take_over_transport(receiving[0].receiver.transport, subscriber_rtp, nothing)
        await self.exchange(publisher, f"room{index}", "host")
        await self.exchange(subscriber, f"room{index}", "guest")
        # The load generator takes the same synchronous paths as the server, to leave it the CPU.
        hooks.receive_now(sending[0].receiver.transport, nothing, publisher_rtcp, nothing)
        hooks.receive_now(receiving[0].receiver.transport, subscriber_rtp, nothing, nothing)
        self.streams.append(stream)
        return stream

    async def publish(self) -> None:
        """Every publisher sends its next frame each 1/30 s, the publishers spread over the interval."""
        period = 1 / FPS
        start = time.perf_counter()
        queue = [(start + period * i / len(self.streams), i) for i in range(len(self.streams))]
        heapq.heapify(queue)
        frames = self.frames
        while True:
            due, index = heapq.heappop(queue)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            stream = self.streams[index]
            heapq.heappush(queue, (due + period, index))
            if not stream.ready.is_set():
                continue
            payloads = frames[stream.frame]
            stream.frame = (stream.frame + 1) % len(frames)
            last = len(payloads) - 1
            for i, payload in enumerate(payloads):
                seq = stream.seq
                stream.seq = (seq + 1) & 0xFFFF
                marker = 0x80 if i == last else 0
                data = pack("!BBHLL", 0x80, marker | stream.payload_type, seq, stream.timestamp, stream.ssrc)
                if seq % SAMPLE_EVERY == 0:
                    stream.sent[seq] = time.perf_counter()
                hooks.send_now(stream.transport, data + payload)  # type: ignore[arg-type]
            stream.timestamp = (stream.timestamp + CLOCK // FPS) & 0xFFFFFFFF

    async def close(self) -> None:
        for stream in self.streams:
            await stream.publisher.close()
            await stream.subscriber.close()


@dataclass
class Figures:
    streams: int
    flowing: int
    server_cpu_fraction: float
    loadgen_cpu_fraction: float
    max_frame_gap_ms: float
    latencies: list[float]
    frames_delivered: int
    server_cpu: float
    server_system_cpu: float  # of server_cpu, in the kernel (socket calls)
    packets_forwarded: (
        int  # by the server (the passthrough's counters): more than arrived when the box is short
    )

    @property
    def streams_per_core(self) -> float:
        """Streams' worth of frames the server delivered per CPU second: N ÷ (CPU s ÷ wall s) when every
        stream keeps up, and still the work actually done per CPU second when the box is too busy for that."""
        return self.frames_delivered / FPS / self.server_cpu if self.server_cpu > 0 else float("inf")


async def run(mode: str, streams: int, seconds: float, frames: list[list[bytes]]) -> Figures:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(target=server_main, args=(theirs, mode), daemon=True)
    server.start()
    generator = LoadGenerator(ours, frames)
    publishing: asyncio.Task[None] | None = None
    try:
        for index in range(streams):
            await generator.add_stream(index)
        publishing = asyncio.ensure_future(generator.publish())
        for _ in range(150):  # up to 30 s for every stream's first frame
            if all(s.last_frame_at for s in generator.streams):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # warm up: keyframes, rate settled
        assert server.pid is not None
        generator.measuring = True
        for s in generator.streams:
            s.max_gap = 0.0
        forwarded0 = await server_forwarded(ours)
        frames0 = sum(s.frames for s in generator.streams)
        wall0, cpu0, own0 = time.perf_counter(), cpu_seconds(server.pid), time.process_time()
        await asyncio.sleep(seconds)
        wall = time.perf_counter() - wall0
        user1, system1 = cpu_seconds(server.pid)
        cpu, system = user1 + system1 - sum(cpu0), system1 - cpu0[1]
        delivered = sum(s.frames for s in generator.streams) - frames0
        own = time.process_time() - own0
        generator.measuring = False
        forwarded = await server_forwarded(ours) - forwarded0
        now = time.perf_counter()
        gaps = [
            max(s.max_gap, now - s.last_frame_at) if s.last_frame_at else float("inf")
            for s in generator.streams
        ]
        return Figures(
            streams=streams,
            flowing=sum(gap < 1.0 for gap in gaps),
            server_cpu_fraction=cpu / wall,
            loadgen_cpu_fraction=own / wall,
            max_frame_gap_ms=max(gaps) * 1000,
            latencies=generator.latencies,
            frames_delivered=delivered,
            server_cpu=cpu,
            server_system_cpu=system,
            packets_forwarded=forwarded,
        )
    finally:
        if publishing is not None:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
        ours.send(("stop",))
        await asyncio.to_thread(ours.recv)
        await generator.close()
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


def percentile_ms(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=100, help="passthrough streams (rooms)")
    parser.add_argument("--transcode-streams", type=int, default=4, help="MediaRelay streams")
    parser.add_argument(
        "--latency-streams", type=int, default=20, help="passthrough streams while latency is taken"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per path")
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    logging.getLogger("aiortc").setLevel(logging.ERROR)

    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    frames = encoded_frames(1.0, args.bitrate)
    packets = sum(len(f) for f in frames)
    size = sum(len(p) for f in frames for p in f)
    rate = FPS / len(frames)
    print(
        f"# loop: {len(frames)} frames, {packets * rate:.0f} packets/s, {size * 8 * rate / 1000:.0f} kbit/s"
    )

    passthrough = asyncio.run(run("passthrough", args.streams, args.seconds, frames))
    transcode = asyncio.run(run("transcode", args.transcode_streams, args.seconds, frames))
    # Latency at full load mostly measures how far behind a saturated box is; it is taken apart, with the
    # server well below a core (on a 2-core box the load generator needs about as much CPU as the server).
    latency = asyncio.run(run("passthrough", args.latency_streams, args.seconds / 2, frames))
    figures: dict[str, float | int] = {
        "passthrough_streams": passthrough.streams,
        "passthrough_streams_flowing": passthrough.flowing,
        "passthrough_server_cpu_fraction": passthrough.server_cpu_fraction,
        "passthrough_server_kernel_share": passthrough.server_system_cpu / passthrough.server_cpu,
        "passthrough_loadgen_cpu_fraction": passthrough.loadgen_cpu_fraction,
        "passthrough_max_frame_gap_ms": passthrough.max_frame_gap_ms,
        "passthrough_frames_delivered_per_s": passthrough.frames_delivered / args.seconds,
        "passthrough_server_packets_forwarded_per_s": passthrough.packets_forwarded / args.seconds,
        "passthrough_server_cpu_us_per_packet": 1e6
        * passthrough.server_cpu
        / max(1, passthrough.packets_forwarded),
        "passthrough_streams_per_core": passthrough.streams_per_core,
        "transcode_streams": transcode.streams,
        "transcode_streams_flowing": transcode.flowing,
        "transcode_server_cpu_fraction": transcode.server_cpu_fraction,
        "transcode_frames_delivered_per_s": transcode.frames_delivered / args.seconds,
        "transcode_streams_per_core": transcode.streams_per_core,
        "relay_ratio": passthrough.streams_per_core / transcode.streams_per_core,
        "latency_streams": latency.streams,
        "latency_streams_flowing": latency.flowing,
        "added_latency_p50_ms": percentile_ms(latency.latencies, 50),
        "added_latency_p99_ms": percentile_ms(latency.latencies, 99),
        "latency_samples": len(latency.latencies),
        "full_load_latency_p50_ms": percentile_ms(passthrough.latencies, 50),
        "full_load_latency_p99_ms": percentile_ms(passthrough.latencies, 99),
    }
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    met = (
        passthrough.flowing == passthrough.streams
        and transcode.flowing == transcode.streams
        and figures["passthrough_streams_per_core"] >= 100
        and figures["relay_ratio"] >= 15
        and figures["added_latency_p99_ms"] < 10
    )
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"targets_met: {'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
