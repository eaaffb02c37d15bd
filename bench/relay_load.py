"""The load generator of bench/relay.py: lean aiortc peers (negotiation only; their packets are sent and
received through the same synchronous SRTP paths as the server's, ``media.hooks``), publishing a looped,
pre-encoded VP8 camera and checking what arrives, frame by frame.

A frame counts as delivered only when every one of its packets arrived: the publisher registers each frame
(its RTP timestamp, how many packets) and the subscriber counts the packets of each timestamp (the relay keeps
a stream's timestamps unless it rebases it, and a rebased frame is then lost, as it would be for a browser).
The transcode baseline re-encodes, so its frames cannot be matched to what was sent: there a frame counts when
every sequence number from the previous frame's last packet to its marker arrived.

In a meeting both seats publish and subscribe, and each behaves like a browser: about every second a sender
report for its camera, a receiver report (with the loss it saw) and a REMB for what it receives, and one
packet in ``NACK_EVERY`` treated as lost and asked again with a NACK; the relay resends it over RTX from its
history, which completes the frame.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from struct import pack, unpack_from

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)
from av import VideoFrame

from media import hooks
from media.forward import header_length

LOOPBACK = ("127.0.0.1",)
FPS = 30
CLOCK = 90_000
SAMPLE_EVERY = 8  # latency is sampled on packets whose sequence number is a multiple of this
NACK_EVERY = 100  # a meeting's subscriber treats one packet in this many as lost (~1 %) and NACKs it
REPORT_INTERVAL = 1.0  # a meeting's subscriber reports (RR + REMB) about this often, as browsers do
GOOD_LINK = 1_500_000  # the REMB a meeting's subscriber reports
NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970
LOST_AFTER = 2.0  # seconds after which a frame still incomplete is given up as lost


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
class Frame:
    expected: int  # packets
    sent_at: float
    in_window: bool  # sent while measuring
    got: int = 0


@dataclass
class Flow:
    """One camera from a publishing seat to a subscribing one: what was sent and what arrived."""

    matched: bool = True  # frames matched to those sent (False: the transcode baseline, see the module)
    pending: dict[int, Frame] = field(default_factory=dict)  # by RTP timestamp
    sent_at: dict[int, float] = field(default_factory=dict)  # sampled packets' send times, by sequence number
    sent_in_window: int = 0
    delivered_in_window: int = 0
    lost: int = 0  # frames given up (LOST_AFTER)
    delivered: int = 0  # complete frames, all the time
    unknown: int = 0  # packets of no frame sent (a rebased stream)
    last_frame_at: float = 0.0
    max_gap: float = 0.0
    # the transcode baseline's frames: contiguous sequence numbers up to a marker
    next_seq: int | None = None
    frame_ts: int | None = None
    frame_whole: bool = False


class Endpoint:
    """One seat's lean peer connection: publishes a camera on m-line 0 and/or receives m-line 0."""

    def __init__(self, generator: LoadGenerator, browser_like: bool) -> None:
        self.generator = generator
        self.browser_like = browser_like  # reports, REMB and NACKs as a browser does (meetings)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceivers = [
            self.pc.addTransceiver(k, direction="sendrecv") for k in ("video", "video", "audio")
        ]
        self.ssrc = hooks.sender_ssrcs(self.transceivers[0].sender)[0]
        self.rtcp_ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.frame = 0
        self.payload_type = 96
        self.ready = asyncio.Event()
        self.sending: Flow | None = None
        self.receiving: Flow | None = None
        self.media_pt = -1  # what the server sends us on m-line 0: payload types and its SSRC
        self.rtx_pt = -1
        self.remote_ssrc = 0
        self.received = 0  # media packets, all the time
        self.ignored = 0  # treated as lost and NACKed
        self.received_prior = self.ignored_prior = 0
        self.highest_seq = 0
        self.rembs = 0  # REMBs the server sent us (about what we publish)
        self.sent_packets = self.sent_octets = 0
        self.next_report = 0.0
        hooks.take_over_transceiver(self.transceivers[0], self._on_send, self._on_receive)
        for transceiver in self.transceivers[1:]:
            hooks.take_over_transceiver(transceiver, _ignore, _ignore)

    @property
    def transport(self) -> object:
        return self.transceivers[0].receiver.transport

    def _on_send(self, parameters: RTCRtpSendParameters) -> None:
        self.payload_type = parameters.codecs[0].payloadType or 96
        self.ready.set()

    def _on_receive(self, parameters: RTCRtpReceiveParameters) -> None:
        media = [c for c in parameters.codecs if not is_rtx(c)]
        self.media_pt = media[0].payloadType or -1
        rtx = [c for c in parameters.codecs if is_rtx(c) and c.parameters.get("apt") == self.media_pt]
        self.rtx_pt = (rtx[0].payloadType or -1) if rtx else -1
        for encoding in parameters.encodings:
            if encoding.ssrc:
                self.remote_ssrc = encoding.ssrc

    async def connect(self, room: str, seat: str) -> None:
        transport = self.transceivers[0].receiver.transport
        hooks.gather_on(transport.transport.iceGatherer, LOOPBACK)
        hooks.take_over_transport(transport, self.on_rtp, self.on_rtcp)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.generator.answer(room, seat, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        hooks.receive_now(transport, self.on_rtp, self.on_rtcp, _ignore)

    # receiving

    def on_rtp(self, data: bytes) -> None:
        flow = self.receiving
        if flow is None:
            return
        now = time.perf_counter()
        payload_type = data[1] & 0x7F
        if payload_type == self.media_pt:
            seq, timestamp = unpack_from("!HL", data, 2)
            self.received += 1
            self.highest_seq = seq
            if self.browser_like and self.received % NACK_EVERY == 0:
                self.ignored += 1  # as if lost on the way: ask for it again
                nack = RtcpRtpfbPacket(
                    fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc, media_ssrc=self.remote_ssrc, lost=[seq]
                )
                hooks.send_now(self.transport, bytes(nack))  # type: ignore[arg-type]
                return
            if seq % SAMPLE_EVERY == 0:
                sent = flow.sent_at.pop(seq, None)
                if sent is not None and self.generator.measuring:
                    self.generator.latencies.append(now - sent)
        elif payload_type == self.rtx_pt:
            seq = unpack_from("!H", data, header_length(data))[0]  # the original's, first in the payload
            timestamp = unpack_from("!L", data, 4)[0]
        else:
            return
        if not flow.matched:
            self._contiguous(flow, data, seq, timestamp, now)
            return
        frame = flow.pending.get(timestamp)
        if frame is None:
            flow.unknown += 1
            return
        frame.got += 1
        if frame.got == frame.expected:
            del flow.pending[timestamp]
            self._delivered(flow, frame.in_window, now)

    def _contiguous(self, flow: Flow, data: bytes, seq: int, timestamp: int, now: float) -> None:
        if timestamp != flow.frame_ts:
            flow.frame_ts = timestamp
            flow.frame_whole = flow.next_seq is None or seq == flow.next_seq
        elif seq != flow.next_seq:
            flow.frame_whole = False
        flow.next_seq = (seq + 1) & 0xFFFF
        if data[1] & 0x80 and flow.frame_whole:  # marker: the frame's last packet
            self._delivered(flow, self.generator.measuring, now)

    def _delivered(self, flow: Flow, in_window: bool, now: float) -> None:
        flow.delivered += 1
        if in_window:
            flow.delivered_in_window += 1
        if self.generator.measuring and flow.last_frame_at:
            flow.max_gap = max(flow.max_gap, now - flow.last_frame_at)
        flow.last_frame_at = now

    def on_rtcp(self, data: bytes) -> None:
        if data[1] == 206 and data[0] & 0x1F == 1:  # PLI: restart the loop at its keyframe
            self.frame = 0
        elif b"REMB" in data:
            self.rembs += 1

    def report(self, now: float) -> None:
        """A browser's periodic RTCP: a sender report for what it sends, a receiver report and a REMB for
        what it receives."""
        if self.sending is not None and self.ready.is_set():
            wall = time.time() + NTP_EPOCH
            info = RtcpSenderInfo(
                ntp_timestamp=int(wall * 2**32) & 0xFFFFFFFFFFFFFFFF,
                rtp_timestamp=self.timestamp,  # the next frame's, due about now
                packet_count=self.sent_packets & 0xFFFFFFFF,
                octet_count=self.sent_octets & 0xFFFFFFFF,
            )
            hooks.send_now(self.transport, bytes(RtcpSrPacket(ssrc=self.ssrc, sender_info=info)))  # type: ignore[arg-type]
        if not self.remote_ssrc or not self.received:
            return
        expected = self.received - self.received_prior
        lost = self.ignored - self.ignored_prior
        self.received_prior, self.ignored_prior = self.received, self.ignored
        block = RtcpReceiverInfo(
            ssrc=self.remote_ssrc,
            fraction_lost=min(255, (lost << 8) // expected) if expected > 0 else 0,
            packets_lost=self.ignored,
            highest_sequence=self.highest_seq,
            jitter=0,
            lsr=0,
            dlsr=0,
        )
        data = bytes(RtcpRrPacket(ssrc=self.rtcp_ssrc, reports=[block])) + bytes(
            RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP,
                ssrc=self.rtcp_ssrc,
                media_ssrc=0,
                fci=pack_remb_fci(GOOD_LINK, [self.remote_ssrc]),
            )
        )
        hooks.send_now(self.transport, data)  # type: ignore[arg-type]

    # sending

    def send_frame(self, payloads: list[bytes], now: float, measuring: bool) -> None:
        flow = self.sending
        assert flow is not None
        timestamp = self.timestamp
        flow.pending[timestamp] = Frame(len(payloads), now, measuring)
        if measuring:
            flow.sent_in_window += 1
        last = len(payloads) - 1
        payload_type, ssrc, transport = self.payload_type, self.ssrc, self.transport
        for index, payload in enumerate(payloads):
            seq = self.seq
            self.seq = (seq + 1) & 0xFFFF
            data = pack("!BBHLL", 0x80, (0x80 if index == last else 0) | payload_type, seq, timestamp, ssrc)
            if seq % SAMPLE_EVERY == 0:
                flow.sent_at[seq] = time.perf_counter()
            hooks.send_now(transport, data + payload)  # type: ignore[arg-type]
            self.sent_octets += len(payload)
        self.sent_packets += len(payloads)
        self.timestamp = (timestamp + CLOCK // FPS) & 0xFFFFFFFF

    async def close(self) -> None:
        await self.pc.close()


class LoadGenerator:
    """Rooms of lean peers against the server behind ``conn`` (bench/relay_server.py)."""

    def __init__(self, conn: Connection, frames: list[list[bytes]]) -> None:
        self.conn = conn
        self.frames = frames
        self.endpoints: list[Endpoint] = []
        self.flows: list[Flow] = []
        self.publishers: list[Endpoint] = []
        self.latencies: list[float] = []
        self.measuring = False
        self.skipped = 0  # frames publishers skipped because the load generator was late
        self._lock = asyncio.Lock()

    async def answer(self, room: str, seat: str, offer: str) -> str:
        async with self._lock:  # one request on the pipe at a time
            self.conn.send(("answer", room, seat, offer))
            answer: str = await asyncio.to_thread(self.conn.recv)
        return answer

    async def add_room(self, index: int, meeting: bool, matched: bool = True) -> None:
        """A room: a publisher and a subscriber, or (``meeting``) two seats that publish and subscribe."""
        host, guest = Endpoint(self, browser_like=meeting), Endpoint(self, browser_like=meeting)
        pairs = [(host, guest), (guest, host)] if meeting else [(host, guest)]
        for publisher, subscriber in pairs:
            flow = Flow(matched=matched)
            publisher.sending, subscriber.receiving = flow, flow
            self.flows.append(flow)
            self.publishers.append(publisher)
        await host.connect(f"room{index}", "host")
        await guest.connect(f"room{index}", "guest")
        self.endpoints += [host, guest]

    async def publish(self) -> None:
        """Every publisher sends its next frame each 1/30 s, the publishers spread over the interval. A
        publisher more than a frame late skips the frames it missed, as a camera does (a starved load
        generator must not flood the server with a backlog): ``skipped`` counts them."""
        period = 1 / FPS
        start = time.perf_counter()
        count = len(self.publishers)
        queue = [(start + period * i / count, i) for i in range(count)]
        heapq.heapify(queue)
        frames = self.frames
        late = 0
        while True:
            due, index = heapq.heappop(queue)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
                late = 0
            elif (late := late + 1) % 32 == 0:
                await asyncio.sleep(0)  # behind: still let what arrives be received
            if delay < -period:
                missed = int(-delay / period)
                self.skipped += missed
                due += missed * period
            heapq.heappush(queue, (due + period, index))
            endpoint = self.publishers[index]
            if not endpoint.ready.is_set():
                continue
            payloads = frames[endpoint.frame]
            endpoint.frame = (endpoint.frame + 1) % len(frames)
            endpoint.send_frame(payloads, time.perf_counter(), self.measuring)

    async def housekeeping(self) -> None:
        """Browser-like reports when due, and frames still incomplete after ``LOST_AFTER`` given up."""
        while True:
            await asyncio.sleep(0.1)
            now = time.perf_counter()
            for endpoint in self.endpoints:
                if endpoint.browser_like and now >= endpoint.next_report:
                    endpoint.next_report = now + REPORT_INTERVAL * (0.5 + random.random())
                    endpoint.report(now)
            for flow in self.flows:
                late = [ts for ts, frame in flow.pending.items() if now - frame.sent_at > LOST_AFTER]
                for ts in late:
                    del flow.pending[ts]
                    flow.lost += 1
                for seq in [s for s, at in flow.sent_at.items() if now - at > LOST_AFTER]:
                    del flow.sent_at[seq]

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.close()


def _ignore(*args: object) -> None:
    pass
