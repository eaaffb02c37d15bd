"""The RTCP of one peer connection: what the relay reads from a browser and what it writes to it.

Read: keyframe requests (PLI, FIR) and NACKs for what the browser receives, passed to the publisher or
answered from the history; the browser's sender reports for what it publishes (their NTP/RTP mapping);
its receiver reports and REMB for what it receives, noted on the publisher's stream (``media.feedback``).
An observer's (a manager sitting in) reports are not noted: its link must not slow the meeting it watches.

Written, on the peer's report interval (``Peer.tick``): one compound packet with a receiver report for what
the browser publishes (loss: the worse of our leg's and the worst subscriber's), a sender report per stream
it receives, and a REMB (the lowest subscriber's, capped). A REMB lower than the last one sent goes out at
once, so a weak subscriber slows the publisher within a round trip rather than a report interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from media.feedback import publisher_bitrate
from media.forward import fir_ssrcs

if TYPE_CHECKING:
    from media.peer import Peer

LOWER_BY = 0.97  # a REMB this much lower than the last one sent to a publisher is sent at once


def read(peer: Peer, data: bytes, now: float) -> None:
    """Act on a compound RTCP packet from ``peer``'s browser (malformed ones are ignored)."""
    try:
        packets = RtcpPacket.parse(data)
    except ValueError:
        return
    for packet in packets:
        if isinstance(packet, RtcpPsfbPacket):
            _feedback(peer, packet, now)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            _nack(peer, packet)
        elif isinstance(packet, RtcpSrPacket):
            inbound = peer.inbound_by_ssrc.get(packet.ssrc)
            if inbound is not None:
                inbound.sender_report(packet.ssrc, packet.sender_info, now)
            _receiver_reports(peer, packet.reports, now)
        elif isinstance(packet, RtcpRrPacket):
            _receiver_reports(peer, packet.reports, now)


def _feedback(peer: Peer, packet: RtcpPsfbPacket, now: float) -> None:
    counters = peer.room.counters
    if packet.fmt == RTCP_PSFB_PLI:
        outbound = peer.outbound_by_ssrc.get(packet.media_ssrc)
        if outbound is not None:
            counters.keyframe_requests_forwarded += 1
            peer.room.keyframe_for(peer, outbound.mline, fir=False)
    elif packet.fmt == RTCP_PSFB_FIR:
        for ssrc in fir_ssrcs(packet.fci):
            outbound = peer.outbound_by_ssrc.get(ssrc)
            if outbound is not None:
                counters.keyframe_requests_forwarded += 1
                peer.room.keyframe_for(peer, outbound.mline, fir=True)
    elif packet.fmt == RTCP_PSFB_APP and peer.sources is None:  # not an observer's (see above)
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:  # another application's feedback
            return
        counters.bitrate_reports_received += 1
        sources = []
        for ssrc in ssrcs:
            outbound = peer.outbound_by_ssrc.get(ssrc)
            if outbound is not None and outbound.source is not None:
                outbound.source.feedback.note_bitrate(peer, bitrate, now)
                sources.append(outbound.source)
        for source in sources:
            publisher = peer.room.publisher_of(source)
            if publisher is not None:
                publisher.send_bitrate(now, only_if_lower=True)


def _nack(peer: Peer, packet: RtcpRtpfbPacket) -> None:
    outbound = peer.outbound_by_ssrc.get(packet.media_ssrc)
    if outbound is None:
        return
    counters = peer.room.counters
    counters.nacks_received += 1
    resend, missing = outbound.retransmissions(packet.lost)
    for data in resend:
        if peer.send(outbound.mline, data):
            counters.retransmissions += 1
    if missing:  # past the history: only a keyframe repairs the picture
        peer.room.keyframe_for(peer, outbound.mline, fir=False)


def _receiver_reports(peer: Peer, reports: list[RtcpReceiverInfo], now: float) -> None:
    if peer.sources is not None:  # an observer: its loss is not the meeting's
        return
    for report in reports:
        outbound = peer.outbound_by_ssrc.get(report.ssrc)
        if outbound is not None and outbound.source is not None:
            peer.room.counters.receiver_reports_received += 1
            outbound.source.feedback.note_loss(peer, report.fraction_lost, now)


def bitrate_for(peer: Peer, now: float) -> tuple[int, list[int]]:
    """The REMB for what ``peer`` publishes: the bitrate and the video SSRCs it covers."""
    video = [i for i in peer.inbounds.values() if i.kind == "video" and i.ssrc is not None]
    bitrate = publisher_bitrate([i.feedback.lowest_bitrate(now) for i in video])
    return bitrate, [i.ssrc for i in video if i.ssrc is not None]


def remb(peer: Peer, bitrate: int, ssrcs: list[int]) -> bytes:
    return bytes(
        RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=peer.rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
        )
    )


def reports(peer: Peer, now: float) -> tuple[bytes, int, int | None]:
    """The periodic compound packet for ``peer`` (empty when there is nothing to report), the number of
    sender reports in it, and the REMB bitrate in it (None when it has none)."""
    blocks = [r for i in peer.inbounds.values() if (r := i.report(now)) is not None]
    senders = [sr for o in peer.outbounds.values() if (sr := o.sender_report(now)) is not None]
    if not blocks and not senders:
        return b"", 0, None
    # A compound packet starts with a report: the receiver report (ours, of what the browser publishes),
    # then one sender report per stream we send it.
    data = bytes(RtcpRrPacket(ssrc=peer.rtcp_ssrc, reports=blocks)) + b"".join(bytes(sr) for sr in senders)
    bitrate, ssrcs = bitrate_for(peer, now)
    if not ssrcs:
        return data, len(senders), None
    return data + remb(peer, bitrate, ssrcs), len(senders), bitrate
