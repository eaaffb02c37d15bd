"""The relay's packet rewriting without sockets: the header-only rewrite gives the same bytes as parsing and
serializing when both sides negotiated the same extension IDs and MID, and the full rewrite is used (the
receiver's MID and IDs) when they differ."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media.forward import HEADER, Inbound, Outbound, extension_ids, header_length

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def negotiated(mid_id: int, abs_id: int) -> tuple[list[RTCRtpHeaderExtensionParameters], HeaderExtensionsMap]:
    extensions = [
        RTCRtpHeaderExtensionParameters(id=mid_id, uri=MID),
        RTCRtpHeaderExtensionParameters(id=abs_id, uri=ABS_SEND_TIME),
    ]
    mapping = HeaderExtensionsMap()
    mapping.configure(RTCRtpParameters(headerExtensions=extensions))
    return extensions, mapping


def packet_bytes(mapping: HeaderExtensionsMap, seq: int, marker: int = 0) -> bytes:
    packet = RtpPacket(payload_type=96, marker=marker, sequence_number=seq, timestamp=9000, ssrc=1111)
    packet.extensions.mid = "0"
    packet.extensions.abs_send_time = 0x123456
    packet.payload = b"\x90\x80" + bytes(range(200))
    return packet.serialize(mapping)


def outbound(mid: str, mapping: HeaderExtensionsMap, ids: list[RTCRtpHeaderExtensionParameters]) -> Outbound:
    return Outbound(0, 2222, 3333, 100, 101, mapping, mid, 90_000, extension_ids(ids))


def test_header_only_rewrite_matches_parse_and_serialize() -> None:
    ids, mapping = negotiated(1, 3)
    inbound = Inbound(0, "video", frozenset({96}), 90_000, "0", extension_ids(ids))
    copying, parsing = outbound("0", mapping, ids), outbound("0", mapping, ids)
    assert copying.copies_header_of(inbound)
    for seq in range(65530, 65536):
        data = packet_bytes(mapping, seq, marker=seq % 2)
        assert header_length(data) > 12
        _, _, seq_in, ts, ssrc = HEADER.unpack_from(data)
        fast = copying.rewrite_header(inbound, data, ssrc, seq_in, ts, now=1.0)
        slow = parsing.rewrite(inbound, RtpPacket.parse(data, mapping), ssrc, seq_in, ts, now=1.0)
        assert fast is not None and fast == slow
        out = RtpPacket.parse(fast, mapping)
        assert (out.ssrc, out.payload_type, out.marker) == (2222, 100, seq % 2)
    resend, missing = copying.retransmissions([65535])
    assert missing == 0 and RtpPacket.parse(resend[0], mapping).ssrc == 3333  # RTX-wrapped from history


def test_other_ids_or_mid_take_the_full_rewrite() -> None:
    publisher_ids, publisher_map = negotiated(1, 3)
    receiver_ids, receiver_map = negotiated(4, 2)
    inbound = Inbound(0, "video", frozenset({96}), 90_000, "0", extension_ids(publisher_ids))
    assert not outbound("0", receiver_map, receiver_ids).copies_header_of(inbound)
    assert not outbound("cam", publisher_map, publisher_ids).copies_header_of(inbound)
    target = outbound("cam", receiver_map, receiver_ids)
    data = packet_bytes(publisher_map, 7)
    out = target.rewrite(inbound, RtpPacket.parse(data, publisher_map), 1111, 7, 9000, now=1.0)
    assert out is not None
    parsed = RtpPacket.parse(out, receiver_map)
    assert (parsed.extensions.mid, parsed.extensions.abs_send_time) == ("cam", 0x123456)


def test_malformed_headers_are_refused() -> None:
    _, mapping = negotiated(1, 3)
    data = packet_bytes(mapping, 1)
    assert header_length(data[:11]) == 0
    assert header_length(bytes([0x40]) + data[1:]) == 0  # RTP version 1
    assert header_length(data[:14]) == 0  # extension runs past the end
    padded = bytes([data[0] | 0x20]) + data[1:-1] + b"\xff"  # padding longer than the packet
    assert header_length(padded) == 0
