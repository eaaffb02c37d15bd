"""Stand-in browsers for the media tests: aiortc peers with the browser's transceiver layout (camera video,
screen video, audio; all sendrecv), real VP8 from a small synthetic camera, and spies on what they receive;
a manager's page sitting in (video m-lines only); and a lean ``Subscriber`` that claims whatever loss and
bandwidth a test wants (a phone on a weak link)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
)
from av import VideoFrame

from media import hooks

LOOPBACK = ("127.0.0.1",)


class Camera(VideoStreamTrack):
    """Small moving frames (cheap to encode on a 2-core box), 30 per second."""

    def __init__(self, width: int = 160, height: int = 120, shade: int = 60) -> None:
        super().__init__()
        self.width, self.height, self.shade = width, height, shade
        self.count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(self.width, self.height, "yuv420p")
        luma = bytearray([self.shade]) * (self.width * self.height)
        row = (self.count * 4) % (self.height - 8)
        luma[row * self.width : (row + 8) * self.width] = b"\xf0" * (8 * self.width)  # a moving bar
        frame.planes[0].update(bytes(luma))
        chroma = b"\x80" * (self.width * self.height // 4)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


class Client:
    """One stand-in browser: one peer connection with the server, three sendrecv transceivers."""

    def __init__(
        self,
        camera: bool = True,
        screen: bool = False,
        audio: bool = False,
        size: tuple[int, int] = (160, 120),
        kinds: tuple[str, ...] = ("video", "video", "audio"),
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceivers: list[RTCRtpTransceiver] = [
            self.pc.addTransceiver(kind, direction="sendrecv") for kind in kinds
        ]
        self.tracks: list[MediaStreamTrack | None] = [Camera(*size) if camera else None]
        self.tracks += [None] * (len(kinds) - 1)
        if screen:
            self.tracks[1] = Camera(width=192, height=108, shade=200)
        if audio:
            self.tracks[2] = AudioStreamTrack()
        for transceiver, track in zip(self.transceivers, self.tracks, strict=True):
            if track is not None:
                transceiver.sender.replaceTrack(track)
        self.frames = [0] * len(kinds)  # decoded frames (audio: 20 ms frames) received per m-line
        self.sizes: list[tuple[int, int] | None] = [None] * len(kinds)  # the last video frame's size
        self.seqs: list[list[int]] = [[] for _ in kinds]  # RTP sequence numbers received per m-line
        self.keyframe_requests = [0] * len(kinds)  # keyframes the server asked this client's senders for
        self.rtcp: list[object] = []  # every RTCP packet the server sent, parsed
        self._tasks: list[asyncio.Task[None]] = []
        for index, transceiver in enumerate(self.transceivers):
            self._spy(index, transceiver)
        transport = self.transceivers[0].receiver.transport  # the bundle's
        handle_rtcp: Callable[[bytes], Any] = transport._handle_rtcp_data

        async def on_rtcp(data: bytes) -> None:
            self.rtcp.extend(RtcpPacket.parse(data))
            await handle_rtcp(data)

        setattr(transport, "_handle_rtcp_data", on_rtcp)  # noqa: B010

    def _spy(self, index: int, transceiver: RTCRtpTransceiver) -> None:
        receiver, sender = transceiver.receiver, transceiver.sender
        handle_rtp: Callable[..., Any] = receiver._handle_rtp_packet
        send_keyframe: Callable[[], None] = sender._send_keyframe

        async def on_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.seqs[index].append(packet.sequence_number)
            await handle_rtp(packet, arrival_time_ms=arrival_time_ms)

        def on_keyframe() -> None:
            self.keyframe_requests[index] += 1
            send_keyframe()

        setattr(receiver, "_handle_rtp_packet", on_rtp)  # noqa: B010
        setattr(sender, "_send_keyframe", on_keyframe)  # noqa: B010

    async def offer(self) -> str:
        for transceiver in self.transceivers[:1]:  # bundled: one transport
            hooks.gather_on(transceiver.receiver.transport.transport.iceGatherer, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        for index, transceiver in enumerate(self.transceivers):
            self._tasks.append(asyncio.ensure_future(self._consume(index, transceiver.receiver.track)))

    async def _consume(self, index: int, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[index] += 1
                if isinstance(frame, VideoFrame):
                    self.sizes[index] = (frame.width, frame.height)
        except MediaStreamError:
            pass

    async def send_pli(self, index: int) -> None:
        """Ask the server for a keyframe on what this client receives on m-line ``index``."""
        receiver = self.transceivers[index].receiver
        (source,) = receiver.getSynchronizationSources()[-1:]
        await receiver._send_rtcp_pli(source.source)

    async def close(self) -> None:
        for track in self.tracks:
            if track is not None:
                track.stop()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def connect(rooms: Any, room_id: str, seat: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    answer = await rooms.answer(room_id, seat, await client.offer())
    await client.accept(answer)
    return client


async def watch(
    rooms: Any, room_id: str, seat: str, sources: tuple[tuple[str, int], ...]
) -> tuple[Client, str]:
    """A manager's stand-in browser sitting in: one video m-line per watched source. It offers them
    ``sendrecv`` with a camera on the first, as a tampered page would; returns it and the server's answer."""
    client = Client(camera=True, size=(64, 48), kinds=("video",) * len(sources))
    answer = await rooms.answer(room_id, seat, await client.offer(), sources)
    await client.accept(answer)
    return client, answer


async def wait_for(predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Subscriber:
    """A lean stand-in subscriber: aiortc's negotiation only (``media.hooks`` keeps its media pipeline idle),
    counting the RTP it receives per m-line and keeping the RTCP the server sends it; ``report()`` sends the
    server whatever receiver report and REMB a test wants it to claim (a phone on a weak link)."""

    def __init__(self, kinds: tuple[str, ...] = ("video", "video", "audio")) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceivers = [self.pc.addTransceiver(kind, direction="sendrecv") for kind in kinds]
        self.ssrcs: list[int | None] = [None] * len(kinds)  # the server's SSRC on each m-line (its answer)
        self.packets = [0] * len(kinds)  # RTP packets received per m-line
        self.last_timestamp: list[int | None] = [None] * len(kinds)  # of the last packet per m-line
        self.rtcp: list[object] = []  # every RTCP packet the server sent, parsed
        self._rtcp_ssrc = 0x5EED
        for index, transceiver in enumerate(self.transceivers):
            hooks.take_over_transceiver(transceiver, _ignore, partial(self._on_receive, index))

    def _on_receive(self, index: int, parameters: RTCRtpReceiveParameters) -> None:
        for encoding in parameters.encodings:
            if encoding.ssrc:
                self.ssrcs[index] = encoding.ssrc

    def _on_rtp(self, data: bytes) -> None:
        ssrc = int.from_bytes(data[8:12], "big")
        if ssrc in self.ssrcs:
            index = self.ssrcs.index(ssrc)
            self.packets[index] += 1
            self.last_timestamp[index] = int.from_bytes(data[4:8], "big")

    def _on_rtcp(self, data: bytes) -> None:
        self.rtcp.extend(RtcpPacket.parse(data))

    async def join(
        self, rooms: Any, room_id: str, seat: str, sources: tuple[tuple[str, int], ...] | None = None
    ) -> None:
        """Negotiate with ``rooms`` (``media.MediaRooms``) for ``seat`` of ``room_id`` (an observer watching
        ``sources`` when given)."""
        await self.accept(await rooms.answer(room_id, seat, await self.offer(), sources))

    async def offer(self) -> str:
        hooks.gather_on(self.transceivers[0].receiver.transport.transport.iceGatherer, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        hooks.take_over_transport(self.transport, self._on_rtp, self._on_rtcp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    @property
    def transport(self) -> RTCDtlsTransport:
        return self.transceivers[0].receiver.transport

    def report(self, fraction_lost: int, bitrate: int, index: int = 0) -> bool:
        """Send the server a receiver report claiming ``fraction_lost``/256 lost and a REMB of ``bitrate``
        for what arrives on m-line ``index``; False until the connection is up and a packet has arrived."""
        ssrc = self.ssrcs[index]
        if ssrc is None or not self.packets[index]:
            return False
        block = RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=fraction_lost,
            packets_lost=0,
            highest_sequence=0,
            jitter=0,
            lsr=0,
            dlsr=0,
        )
        data = bytes(RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=[block]))
        data += bytes(
            RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=self._rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, [ssrc])
            )
        )
        return hooks.send_now(self.transport, data)

    def sender_reports(self, index: int = 0) -> list[RtcpSrPacket]:
        return [p for p in self.rtcp if isinstance(p, RtcpSrPacket) and p.ssrc == self.ssrcs[index]]

    async def close(self) -> None:
        await self.pc.close()


def _ignore(parameters: object) -> None:
    pass
