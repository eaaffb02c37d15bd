"""One seat's peer connection with the server: the m-lines it publishes (``Inbound``) and receives
(``Outbound``), the RTCP it answers, and nothing of aiortc's media pipeline (see ``media.hooks``)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from functools import partial
from typing import Protocol

from aiortc import (
    RTCConfiguration,
    RTCDtlsTransport,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import (
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
)

from media import hooks
from media.forward import (
    HEADER,
    Counters,
    Inbound,
    Outbound,
    extension_ids,
    fir_fci,
    fir_ssrcs,
    header_length,
)
from media.sdp import announce
from media.settings import MediaSettings

LAYOUT = ("video", "video", "audio")  # camera, screen, browser audio (docs/protocol.md, "Media")
REPORT_INTERVAL = 1.0  # seconds between receiver reports to a publisher
REMB_BITRATE = 2_000_000  # the server does not estimate bandwidth: it lets publishers go up to this
KEYFRAME_MIN_INTERVAL = 0.1  # seconds between keyframe requests to one stream
# Video is answered VP8 only: both browsers must send what the other decodes, and VP8 is what every
# browser has (H.264 profiles and packetization modes would have to match on both sides).
PREFERRED = {"video": "video/VP8", "audio": "audio/opus"}


class Room(Protocol):
    """What a peer needs of its room (``media.rooms.Room``)."""

    counters: Counters

    def forward(
        self, publisher: Peer, inbound: Inbound, data: bytes, ssrc: int, seq: int, timestamp: int, now: float
    ) -> None: ...
    def keyframe_for(self, subscriber: Peer, mline: int, fir: bool) -> None: ...
    def contain(self, exc: Exception, where: str) -> None: ...


def codec_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType == PREFERRED[kind] or c.mimeType.endswith("/rtx")]


class Peer:
    """One participant's RTCPeerConnection with the server.

    ``sources`` makes it a receive-only observer (a manager sitting in): one video m-line per (seat, m-line)
    it watches, in that order, and nothing it sends is taken. Without ``sources`` it has the participants'
    :data:`LAYOUT`, sending and receiving."""

    def __init__(
        self,
        room: Room,
        seat: str,
        settings: MediaSettings,
        sources: tuple[tuple[str, int], ...] | None = None,
    ) -> None:
        self.room = room
        self.seat = seat
        self.settings = settings
        self.sources = sources
        self._by_source = {source: mline for mline, source in enumerate(sources or ())}
        servers = [RTCIceServer(urls=list(settings.stun_urls))] if settings.stun_urls else []
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.inbounds: dict[int, Inbound] = {}
        self.outbounds: dict[int, Outbound] = {}
        self.closed = False
        self._transports: dict[int, RTCDtlsTransport] = {}  # by m-line, for sending
        self._outbound_by_ssrc: dict[int, Outbound] = {}
        self._inbound_by_ssrc: dict[int, Inbound] = {}
        self._inbound_by_mid: dict[str, Inbound] = {}
        self._rtx_ssrcs: set[int] = set()
        self._extensions = HeaderExtensionsMap()
        self._rtcp_ssrc = random.getrandbits(32)
        self._tasks: set[asyncio.Task[None]] = set()

    async def answer(self, offer_sdp: str) -> str:
        # Transceivers made beforehand take the offer's m-lines in order, with our codecs and direction.
        layout = LAYOUT if self.sources is None else ("video",) * len(self.sources)
        direction = "sendrecv" if self.sources is None else "sendonly"
        for index, kind in enumerate(layout):
            transceiver = self.pc.addTransceiver(kind, direction=direction)
            transceiver.setCodecPreferences(codec_preferences(kind))
            hooks.wait_for_checks(transceiver.receiver.transport.transport.iceGatherer)  # before the offer
            hooks.take_over_transceiver(
                transceiver,
                on_send=partial(self._on_send, index, transceiver),
                on_receive=partial(self._on_receive, index, transceiver),
            )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        seen: set[int] = set()
        transports: list[RTCDtlsTransport] = []
        for transceiver in self.pc.getTransceivers():
            transport = transceiver.receiver.transport
            if id(transport) in seen:
                continue
            seen.add(id(transport))
            hooks.take_over_transport(transport, self._on_rtp, self._on_rtcp)
            gatherer = transport.transport.iceGatherer
            if self.settings.host_addresses:
                hooks.gather_on(gatherer, self.settings.host_addresses)
            transports.append(transport)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        for transport in transports:  # gathered now: its sockets exist
            hooks.receive_now(transport, self._on_rtp, self._on_rtcp, self._on_srtp_error)
        self._spawn(self._report_loop())
        sdp = self.pc.localDescription.sdp
        if self.settings.announced_address:
            sdp = announce(sdp, self.settings.announced_address)
        return sdp

    async def close(self) -> None:
        self.closed = True
        for inbound in self.inbounds.values():
            inbound.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()

    # negotiated parameters, handed over by media.hooks once DTLS is up

    def _on_send(self, mline: int, transceiver: RTCRtpTransceiver, parameters: RTCRtpSendParameters) -> None:
        codec = parameters.codecs[0]
        assert codec.payloadType is not None  # negotiated codecs always have one
        rtx = [
            c.payloadType
            for c in parameters.codecs
            if is_rtx(c) and c.parameters.get("apt") == codec.payloadType
        ]
        extensions = HeaderExtensionsMap()
        extensions.configure(parameters)
        ssrc, rtx_ssrc = hooks.sender_ssrcs(transceiver.sender)
        outbound = Outbound(
            mline,
            ssrc,
            rtx_ssrc,
            codec.payloadType,
            rtx[0] if rtx else None,
            extensions,
            parameters.muxId,
            codec.clockRate,
            extension_ids(parameters.headerExtensions),
        )
        self.outbounds[mline] = outbound
        self._outbound_by_ssrc[ssrc] = outbound
        self._transports[mline] = transceiver.sender.transport
        try:  # a new receiver needs a keyframe to start from
            self.room.keyframe_for(self, mline, fir=False)
        except Exception as exc:  # not aiortc's connect's trouble
            self.room.contain(exc, "keyframe")

    def _on_receive(
        self, mline: int, transceiver: RTCRtpTransceiver, parameters: RTCRtpReceiveParameters
    ) -> None:
        media: list[RTCRtpCodecParameters] = [c for c in parameters.codecs if not is_rtx(c)]
        if not media:
            return
        inbound = Inbound(
            mline,
            transceiver.kind,
            frozenset(c.payloadType for c in media if c.payloadType is not None),
            media[0].clockRate,
            parameters.muxId,
            extension_ids(parameters.headerExtensions),
        )
        self._extensions.configure(parameters)
        self.inbounds[mline] = inbound
        if parameters.muxId:
            self._inbound_by_mid[parameters.muxId] = inbound
        for encoding in parameters.encodings:
            if encoding.ssrc:
                self._inbound_by_ssrc[encoding.ssrc] = inbound
            if encoding.rtx:
                self._rtx_ssrcs.add(encoding.rtx.ssrc)

    # packets, handed over by media.hooks

    def _on_srtp_error(self) -> None:
        self.room.counters.packets_dropped += 1

    def _on_rtp(self, data: bytes) -> None:
        counters = self.room.counters
        try:
            counters.packets_received += 1
            if not header_length(data):
                counters.packets_dropped += 1
                return
            _, second, seq, timestamp, ssrc = HEADER.unpack_from(data)
            inbound = self._inbound_by_ssrc.get(ssrc)
            if inbound is None:
                packet = self.parse(data)
                inbound = self._learn_ssrc(packet) if packet is not None else None
                if inbound is None:
                    counters.packets_dropped += 1
                    return
            if second & 0x7F not in inbound.payload_types:
                counters.packets_dropped += 1  # RTX (we send no NACKs upstream) or an unnegotiated codec
                return
            now = time.monotonic()
            if inbound.note(ssrc, seq, now):
                self.ask_keyframe(inbound, fir=False)  # a stream (re)started: its receivers need one
            self.room.forward(self, inbound, data, ssrc, seq, timestamp, now)
        except Exception as exc:  # one room's trouble must not end this connection, nor others
            self.room.contain(exc, "rtp")

    def parse(self, data: bytes) -> RtpPacket | None:
        """An RTP packet of this peer, its extensions read as it negotiated them; None if malformed."""
        try:
            return RtpPacket.parse(data, self._extensions)
        except ValueError:
            return None

    def _learn_ssrc(self, packet: RtpPacket) -> Inbound | None:
        # A new SSRC (a track after a stop, or none announced in the offer): place it by its MID.
        if packet.ssrc in self._rtx_ssrcs:
            return None
        inbound = self._inbound_by_mid.get(packet.extensions.mid) if packet.extensions.mid else None
        if inbound is None:
            return None
        for ssrc in [s for s, i in self._inbound_by_ssrc.items() if i is inbound]:
            del self._inbound_by_ssrc[ssrc]  # bounded: one SSRC per m-line
        self._inbound_by_ssrc[packet.ssrc] = inbound
        return inbound

    def _on_rtcp(self, data: bytes) -> None:
        try:
            try:
                packets = RtcpPacket.parse(data)
            except ValueError:
                return
            for packet in packets:
                self._handle_rtcp(packet)
        except Exception as exc:
            self.room.contain(exc, "rtcp")

    def _handle_rtcp(self, packet: object) -> None:
        if isinstance(packet, RtcpPsfbPacket):
            if packet.fmt == RTCP_PSFB_PLI:
                outbound = self._outbound_by_ssrc.get(packet.media_ssrc)
                if outbound is not None:
                    self.room.counters.keyframe_requests_forwarded += 1
                    self.room.keyframe_for(self, outbound.mline, fir=False)
            elif packet.fmt == RTCP_PSFB_FIR:
                for ssrc in fir_ssrcs(packet.fci):
                    outbound = self._outbound_by_ssrc.get(ssrc)
                    if outbound is not None:
                        self.room.counters.keyframe_requests_forwarded += 1
                        self.room.keyframe_for(self, outbound.mline, fir=True)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            outbound = self._outbound_by_ssrc.get(packet.media_ssrc)
            if outbound is not None:
                self.room.counters.nacks_received += 1
                resend, missing = outbound.retransmissions(packet.lost)
                for data in resend:
                    if self.send(outbound.mline, data):
                        self.room.counters.retransmissions += 1
                if missing:  # past the history: only a keyframe repairs the picture
                    self.room.keyframe_for(self, outbound.mline, fir=False)
        elif isinstance(packet, RtcpSrPacket):
            inbound = self._inbound_by_ssrc.get(packet.ssrc)
            if inbound is not None:
                inbound.lsr = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
                inbound.lsr_at = time.monotonic()

    # sending

    def receiving(self, seat: str, mline: int) -> Outbound | None:
        """Where this peer receives what ``seat`` publishes on ``mline``: the same m-line for a participant
        (from the other seat), the m-line watching that source for an observer."""
        if self.sources is None:
            return self.outbounds.get(mline)
        index = self._by_source.get((seat, mline))
        return None if index is None else self.outbounds.get(index)

    def source_of(self, mline: int) -> tuple[str, int] | None:
        """For an observer: the (seat, m-line) its ``mline`` watches."""
        return self.sources[mline] if self.sources is not None and mline < len(self.sources) else None

    def send(self, mline: int, data: bytes) -> bool:
        return hooks.send_now(self._transports[mline], data)

    def ask_keyframe(self, inbound: Inbound, fir: bool) -> None:
        """Ask this (publishing) peer for a keyframe on ``inbound``'s stream."""
        now = time.monotonic()
        if (
            inbound.ssrc is None
            or inbound.kind != "video"
            or now - inbound.keyframe_asked_at < KEYFRAME_MIN_INTERVAL
        ):
            return
        inbound.keyframe_asked_at = now
        if fir:
            inbound.fir_seq += 1
            request = RtcpPsfbPacket(
                fmt=RTCP_PSFB_FIR,
                ssrc=self._rtcp_ssrc,
                media_ssrc=0,
                fci=fir_fci(inbound.ssrc, inbound.fir_seq),
            )
        else:
            request = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self._rtcp_ssrc, media_ssrc=inbound.ssrc)
        transport = self._any_transport()
        if transport is not None and hooks.send_now(transport, bytes(request)):
            self.room.counters.keyframe_requests_sent += 1

    def _any_transport(self) -> RTCDtlsTransport | None:
        transceivers = self.pc.getTransceivers()
        return transceivers[0].receiver.transport if transceivers else None

    async def _report_loop(self) -> None:
        # Receiver reports (loss, for the publisher's congestion control) and a REMB cap, once a second.
        while True:
            await asyncio.sleep(REPORT_INTERVAL * (0.5 + random.random()))
            try:
                now = time.monotonic()
                reports = [r for i in self.inbounds.values() if (r := i.report(now)) is not None]
                if not reports:
                    continue
                data = bytes(RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=reports))
                video = [i.ssrc for i in self.inbounds.values() if i.kind == "video" and i.ssrc is not None]
                if video:
                    data += bytes(
                        RtcpPsfbPacket(
                            fmt=RTCP_PSFB_APP,
                            ssrc=self._rtcp_ssrc,
                            media_ssrc=0,
                            fci=pack_remb_fci(REMB_BITRATE, video),
                        )
                    )
                transport = self._any_transport()
                if transport is not None:
                    hooks.send_now(transport, data)
            except Exception as exc:
                self.room.contain(exc, "rtcp-report")

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
