"""The relay's per-stream bookkeeping: what a seat publishes on an m-line (``Inbound``), and how packets are
rewritten for a seat receiving on an m-line (``Outbound``): SSRC, payload type, sequence numbers and
timestamps kept continuous across a publisher's SSRC change or rejoin, a short history for NACKs, and the
sender reports of the rewritten stream (the publisher's NTP/RTP mapping carried over, with our counts).

When both sides negotiated the same header extension IDs and MID for the m-line (browsers number them alike)
only the 12-byte fixed header is rewritten and the rest of the packet is copied; otherwise the packet is
parsed with the publisher's extension map and serialized with the receiver's.

Pure bookkeeping over aiortc's ``RtpPacket``; no I/O, no aiortc internals.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, fields
from struct import Struct, pack, unpack_from

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpReceiverInfo,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    wrap_rtx,
)

from media.feedback import Feedback

HISTORY = 512  # forwarded packets kept per receiving m-line for retransmission (~4 s of 1 Mbps video)
SWITCH_AFTER_SILENCE = 0.5  # seconds a source must be silent before another publisher may take its m-line
HEADER = Struct("!BBHLL")  # RTP fixed header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC
REWRITTEN = Struct("!BHLL")  # M/PT, sequence number, timestamp, SSRC

ExtensionIds = frozenset[tuple[int, str]]  # (id, URI) pairs negotiated for an m-line


def extension_ids(extensions: Iterable[RTCRtpHeaderExtensionParameters]) -> ExtensionIds:
    return frozenset((e.id, e.uri) for e in extensions)


def header_length(data: bytes) -> int:
    """Length of the RTP header of ``data`` (fixed header, CSRCs, extension), or 0 when malformed."""
    size = len(data)
    if size < 12 or data[0] >> 6 != 2:
        return 0
    length = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if length + 4 > size:
            return 0
        length += 4 + 4 * unpack_from("!H", data, length + 2)[0]
    if data[0] & 0x20 and (data[-1] == 0 or length + data[-1] > size):  # padding
        return 0
    return length if length <= size else 0


@dataclass
class Counters:
    """What the relay did; read by tests, the bench and (later) metrics."""

    packets_received: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_dropped: int = 0  # unknown SSRC/payload type (RTX padding, probes), malformed
    keyframe_requests_forwarded: int = 0  # PLI/FIR from a receiving browser passed to the publisher
    keyframe_requests_sent: int = 0  # every PLI/FIR sent to publishers (also on joins and stream starts)
    nacks_received: int = 0
    retransmissions: int = 0
    forwarding_errors: int = 0
    receiver_reports_received: int = 0  # report blocks from subscribers about what we send them
    bitrate_reports_received: int = 0  # REMBs from subscribers
    sender_reports_sent: int = 0

    def add(self, other: Counters) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class Inbound:
    """One m-line a seat publishes on: its current SSRC, what a receiver report needs, the publisher's last
    sender report (its NTP/RTP mapping) and what the subscribers report about the stream (``feedback``)."""

    def __init__(
        self,
        mline: int,
        kind: str,
        payload_types: frozenset[int],
        clock_rate: int,
        mid: str | None = None,
        extension_ids: ExtensionIds = frozenset(),
    ) -> None:
        self.mline = mline
        self.kind = kind
        self.payload_types = payload_types
        self.clock_rate = clock_rate
        self.mid = mid
        self.extension_ids = extension_ids
        self.ssrc: int | None = None
        self.last_at = 0.0
        self.closed = False
        self.keyframe_asked_at = -1.0
        self.fir_seq = 0
        # receiver report state (RFC 3550 A.3), for the current SSRC
        self._base_seq = 0
        self._max_seq = 0  # extended
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self.lsr = 0
        self.lsr_at = 0.0
        self.sr_ntp = 0  # the publisher's last sender report: NTP timestamp, RTP timestamp, when it arrived
        self.sr_rtp = 0
        self.sr_at: float | None = None
        self.feedback = Feedback()

    def sender_report(self, ssrc: int, info: RtcpSenderInfo, now: float) -> None:
        """The publisher's sender report for ``ssrc``, arrived at ``now``."""
        if ssrc != self.ssrc:
            return
        self.lsr = (info.ntp_timestamp >> 16) & 0xFFFFFFFF
        self.lsr_at = now
        self.sr_ntp, self.sr_rtp, self.sr_at = info.ntp_timestamp, info.rtp_timestamp, now

    def note(self, ssrc: int, seq: int, now: float) -> bool:
        """Account for a packet; True when it starts a new stream (first packet, or a new SSRC)."""
        self.last_at = now
        if ssrc != self.ssrc:
            self.ssrc = ssrc
            self._base_seq = self._max_seq = seq
            self._received = 1
            self._expected_prior = self._received_prior = 0
            self.lsr = 0
            self.sr_at = None
            return True
        delta = (seq - self._max_seq) & 0xFFFF
        if delta < 0x8000:
            self._max_seq += delta
        self._received += 1
        return False

    def report(self, now: float) -> RtcpReceiverInfo | None:
        """A receiver report block for the current SSRC (jitter is not measured: 0). Its loss fraction is the
        worse of our own leg's and the worst a subscriber reports (``feedback``), so that the publisher's
        congestion control sees the weakest link."""
        if self.ssrc is None:
            return None
        expected = self._max_seq - self._base_seq + 1
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior, self._received_prior = expected, self._received
        lost_interval = expected_interval - received_interval
        fraction = (lost_interval << 8) // expected_interval if expected_interval > 0 < lost_interval else 0
        fraction = max(fraction, self.feedback.worst_loss(now))
        lost = max(0, min(expected - self._received, 0x7FFFFF))
        dlsr = int((now - self.lsr_at) * 65536) if self.lsr else 0
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=lost,
            highest_sequence=self._max_seq & 0xFFFFFFFF,
            jitter=0,
            lsr=self.lsr,
            dlsr=dlsr,
        )


class Outbound:
    """One m-line a seat receives on: rewrites forwarded packets into this seat's stream."""

    def __init__(
        self,
        mline: int,
        ssrc: int,
        rtx_ssrc: int,
        payload_type: int,
        rtx_payload_type: int | None,
        extensions: HeaderExtensionsMap,
        mid: str | None,
        clock_rate: int,
        extension_ids: ExtensionIds = frozenset(),
    ) -> None:
        self.mline = mline
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.extensions = extensions
        self.mid = mid
        self.clock_rate = clock_rate
        self.extension_ids = extension_ids
        self.source: Inbound | None = None
        self._source_ssrc: int | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq: int | None = None
        self._last_ts = 0
        self._last_at = 0.0
        self._history: list[bytes | None] = [None] * HISTORY
        self._rtx_seq = random.randint(0, 0xFFFF)
        self.rebased = False  # the last rewrite started a new segment: its receiver needs a keyframe
        self.packets = 0  # RTP packets and payload octets sent on this SSRC, for sender reports
        self.octets = 0

    def resync(self) -> None:
        """Start a new segment at the next packet, continuing this m-line's numbering without a gap (after
        the relay itself dropped packets: a gap would make receivers wait for packets that never come)."""
        self._source_ssrc = None

    def accepts(self, inbound: Inbound, now: float) -> bool:
        """Whether ``inbound`` may feed this m-line (one publisher at a time; a silent or gone one yields)."""
        source = self.source
        return (
            source is None
            or source is inbound
            or source.closed
            or now - source.last_at >= SWITCH_AFTER_SILENCE
        )

    def copies_header_of(self, inbound: Inbound) -> bool:
        """Whether packets of ``inbound`` need only their fixed header rewritten for this m-line (the same
        extension IDs and MID on both sides, so the extensions mean the same to the receiver)."""
        return inbound.extension_ids == self.extension_ids and inbound.mid == self.mid

    def rewrite_header(
        self, inbound: Inbound, data: bytes, ssrc: int, seq: int, timestamp: int, now: float
    ) -> bytes | None:
        """``data`` (an RTP packet of ``inbound``, see ``copies_header_of``) with this m-line's SSRC, payload
        type, sequence number and timestamp, or None when another source owns the m-line."""
        placed = self._place(inbound, ssrc, seq, timestamp, now)
        if placed is None:
            return None
        out_seq, out_ts = placed
        out = b"".join(
            (
                data[:1],
                REWRITTEN.pack((data[1] & 0x80) | self.payload_type, out_seq, out_ts, self.ssrc),
                data[12:],
            )
        )
        self._history[out_seq % HISTORY] = out
        return out

    def rewrite(
        self, inbound: Inbound, packet: RtpPacket, ssrc: int, seq: int, timestamp: int, now: float
    ) -> bytes | None:
        """``packet`` (whose original ``ssrc``/``seq``/``timestamp`` are passed, as the packet object is
        shared between receivers) serialized for this m-line, or None when another source owns it."""
        placed = self._place(inbound, ssrc, seq, timestamp, now)
        if placed is None:
            return None
        out_seq, out_ts = placed
        packet.ssrc = self.ssrc
        packet.payload_type = self.payload_type
        packet.sequence_number = out_seq
        packet.timestamp = out_ts
        packet.extensions.mid = self.mid
        data = packet.serialize(self.extensions)
        self._history[out_seq % HISTORY] = data
        return data

    def _place(
        self, inbound: Inbound, ssrc: int, seq: int, timestamp: int, now: float
    ) -> tuple[int, int] | None:
        # The sequence number and timestamp a packet of ``inbound`` gets on this m-line.
        self.rebased = False
        if inbound is not self.source or ssrc != self._source_ssrc:
            if not self.accepts(inbound, now):
                return None
            self._rebase(inbound, ssrc, seq, timestamp, now)
            self.rebased = True
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        last = self._last_seq
        if last is None or ((out_seq - last) & 0xFFFF) < 0x8000:
            self._last_seq, self._last_ts, self._last_at = out_seq, out_ts, now
        return out_seq, out_ts

    def _rebase(self, inbound: Inbound, ssrc: int, seq: int, timestamp: int, now: float) -> None:
        # A new stream continues where the previous one stopped, so the receiving browser sees one stream.
        self.source, self._source_ssrc = inbound, ssrc
        if self._last_seq is None:
            self._seq_offset = self._ts_offset = 0
            return
        self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
        gap = max(1, int((now - self._last_at) * self.clock_rate))
        self._ts_offset = (self._last_ts + gap - timestamp) & 0xFFFFFFFF

    def sender_report(self, now: float) -> RtcpSrPacket | None:
        """A sender report for this m-line's stream, or None before there is one to report on.

        The NTP/RTP pair is the publisher's last one, carried forward by the time since it arrived and moved
        into this stream's timestamps (``_ts_offset``): a receiver then relates audio and video of one
        publisher as the publisher's own clock does (lip sync), whatever offsets the relay applies. RTT needs
        no clock of ours in it: a receiver echoes the NTP in its report (LSR) with the delay since (DLSR)."""
        source = self.source
        if source is None or not self.packets or source.sr_at is None or source.ssrc != self._source_ssrc:
            return None
        elapsed = max(0.0, now - source.sr_at)
        ntp = (source.sr_ntp + int(elapsed * 4294967296.0)) & 0xFFFFFFFFFFFFFFFF
        rtp = (source.sr_rtp + self._ts_offset + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        info = RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=rtp,
            packet_count=self.packets & 0xFFFFFFFF,
            octet_count=self.octets & 0xFFFFFFFF,
        )
        return RtcpSrPacket(ssrc=self.ssrc, sender_info=info)

    def retransmissions(self, lost: list[int]) -> tuple[list[bytes], int]:
        """Packets to resend for a NACK, from the history (RTX-wrapped when RTX was negotiated), and how many
        of the asked ones are no longer (or never were) there."""
        out = []
        missing = 0
        for seq in lost:
            data = self._history[seq % HISTORY]
            if data is None or unpack_from("!H", data, 2)[0] != seq:
                missing += 1
                continue
            if self.rtx_payload_type is not None:
                packet = RtpPacket.parse(data, self.extensions)
                data = wrap_rtx(packet, self.rtx_payload_type, self._rtx_seq, self.rtx_ssrc).serialize(
                    self.extensions
                )
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            out.append(data)
        return out, missing


def fir_ssrcs(fci: bytes) -> list[int]:
    """The media SSRCs a FIR asks keyframes of (RFC 5104 4.3.1: 8-byte entries, SSRC first)."""
    return [unpack_from("!L", fci, pos)[0] for pos in range(0, len(fci) - 7, 8)]


def fir_fci(ssrc: int, seq: int) -> bytes:
    return pack("!LB3x", ssrc, seq & 0xFF)
