"""One seat's peer connection with the server: the m-lines it publishes (``Inbound``) and receives
(``Outbound``), its RTCP (``media.rtcp``), and nothing of aiortc's media pipeline (see ``media.hooks``).

Time comes from the injected clock (``core.clock``): keyframe request spacing and report intervals are
rules over it, so tests move a ``ManualClock`` instead of sleeping."""

from __future__ import annotations

import random
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
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket

from core.clock import Clock
from media import hooks, rtcp
from media.forward import HEADER, Counters, Inbound, Outbound, extension_ids, fir_fci, header_length
from media.sdp import announce
from media.settings import MediaSettings

LAYOUT = ("video", "video", "audio")  # camera, screen, browser audio (docs/protocol.md, "Media")
REPORT_INTERVAL = 1.0  # mean seconds between a peer's reports (randomised ±50 %, as RFC 3550 asks)
KEYFRAME_MIN_INTERVAL = 0.1  # seconds between keyframe requests to one stream
# Video is answered VP8 only: both browsers must send what the other decodes, and VP8 is what every
# browser has (H.264 profiles and packetization modes would have to match on both sides).
PREFERRED = {"video": "video/VP8", "audio": "audio/opus"}


class Room(Protocol):
    """What a peer needs of its room (``media.rooms.Room``)."""

    counters: Counters

    def forward(
        self,
        publisher: Peer,
        inbound: Inbound,
        data: bytes,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload_size: int,
        now: float,
    ) -> None: ...
    def keyframe_for(self, subscriber: Peer, mline: int, fir: bool) -> None: ...
    def publisher_of(self, inbound: Inbound) -> Peer | None: ...
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
        clock: Clock,
        sources: tuple[tuple[str, int], ...] | None = None,
    ) -> None:
        self.room = room
        self.seat = seat
        self.settings = settings
        self.clock = clock
        self.sources = sources
        self._by_source = {source: mline for mline, source in enumerate(sources or ())}
        servers = [RTCIceServer(urls=list(settings.stun_urls))] if settings.stun_urls else []
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.inbounds: dict[int, Inbound] = {}
        self.outbounds: dict[int, Outbound] = {}
        self.closed = False
        self.outbound_by_ssrc: dict[int, Outbound] = {}
        self.inbound_by_ssrc: dict[int, Inbound] = {}
        self.rtcp_ssrc = random.getrandbits(32)  # the sender SSRC of our receiver reports and feedback
        self._transports: dict[int, RTCDtlsTransport] = {}  # by m-line, for sending
        self._inbound_by_mid: dict[str, Inbound] = {}
        self._rtx_ssrcs: set[int] = set()
        self._extensions = HeaderExtensionsMap()
        self._next_report = clock() + REPORT_INTERVAL * random.random()
        self._bitrate_sent: int | None = None  # the last REMB sent to this (publishing) peer

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
        sdp = self.pc.localDescription.sdp
        if self.settings.announced_address:
            sdp = announce(sdp, self.settings.announced_address)
        return sdp

    async def close(self) -> None:
        self.closed = True
        for inbound in self.inbounds.values():
            inbound.closed = True
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
        self.outbound_by_ssrc[ssrc] = outbound
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
                self.inbound_by_ssrc[encoding.ssrc] = inbound
            if encoding.rtx:
                self._rtx_ssrcs.add(encoding.rtx.ssrc)

    # packets, handed over by media.hooks

    def _on_srtp_error(self) -> None:
        self.room.counters.packets_dropped += 1

    def _on_rtp(self, data: bytes) -> None:
        counters = self.room.counters
        try:
            counters.packets_received += 1
            header = header_length(data)
            if not header:
                counters.packets_dropped += 1
                return
            _, second, seq, timestamp, ssrc = HEADER.unpack_from(data)
            inbound = self.inbound_by_ssrc.get(ssrc)
            if inbound is None:
                packet = self.parse(data)
                inbound = self._learn_ssrc(packet) if packet is not None else None
                if inbound is None:
                    counters.packets_dropped += 1
                    return
            if second & 0x7F not in inbound.payload_types:
                counters.packets_dropped += 1  # RTX (we send no NACKs upstream) or an unnegotiated codec
                return
            now = self.clock()
            if inbound.note(ssrc, seq, now):
                self.ask_keyframe(inbound, fir=False)  # a stream (re)started: its receivers need one
            self.room.forward(self, inbound, data, ssrc, seq, timestamp, len(data) - header, now)
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
        for ssrc in [s for s, i in self.inbound_by_ssrc.items() if i is inbound]:
            del self.inbound_by_ssrc[ssrc]  # bounded: one SSRC per m-line
        self.inbound_by_ssrc[packet.ssrc] = inbound
        return inbound

    def _on_rtcp(self, data: bytes) -> None:
        try:
            rtcp.read(self, data, self.clock())
        except Exception as exc:
            self.room.contain(exc, "rtcp")

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
        now = self.clock()
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
                ssrc=self.rtcp_ssrc,
                media_ssrc=0,
                fci=fir_fci(inbound.ssrc, inbound.fir_seq),
            )
        else:
            request = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=inbound.ssrc)
        transport = self._any_transport()
        if transport is not None and hooks.send_now(transport, bytes(request)):
            self.room.counters.keyframe_requests_sent += 1

    def _any_transport(self) -> RTCDtlsTransport | None:
        transceivers = self.pc.getTransceivers()
        return transceivers[0].receiver.transport if transceivers else None

    def tick(self, now: float) -> None:
        """Send this peer its reports when its report interval has passed (``media.rtcp.reports``)."""
        if self.closed or now < self._next_report:
            return
        self._next_report = now + REPORT_INTERVAL * (0.5 + random.random())
        data, senders, bitrate = rtcp.reports(self, now)
        transport = self._any_transport()
        if data and transport is not None and hooks.send_now(transport, data):
            self.room.counters.sender_reports_sent += senders
            if bitrate is not None:
                self._bitrate_sent = bitrate

    def send_bitrate(self, now: float, only_if_lower: bool) -> None:
        """Send this (publishing) peer a REMB now; ``only_if_lower``: only when lower than the last one."""
        bitrate, ssrcs = rtcp.bitrate_for(self, now)
        if not ssrcs or (
            only_if_lower and self._bitrate_sent and bitrate >= self._bitrate_sent * rtcp.LOWER_BY
        ):
            return
        transport = self._any_transport()
        if transport is not None and hooks.send_now(transport, rtcp.remb(self, bitrate, ssrcs)):
            self._bitrate_sent = bitrate
