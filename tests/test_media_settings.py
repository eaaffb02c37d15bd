"""ICE servers for browsers (TURN REST credentials) and the announced address in answers."""

from __future__ import annotations

import base64
import hashlib
import hmac

from media import MediaSettings, ice_servers
from media.sdp import announce


def test_turn_rest_credentials_are_coturns_scheme() -> None:
    settings = MediaSettings(
        stun_urls=("stun:stun.example.jp:3478",),
        turn_urls=("turn:turn.example.jp:3478?transport=udp", "turns:turn.example.jp:5349"),
        turn_secret="s3cret",
        turn_ttl_seconds=600,
    )
    servers = ice_servers(settings, "room1-guest", now=1_800_000_000.7)
    assert servers[0] == {"urls": ["stun:stun.example.jp:3478"]}
    turn = servers[1]
    assert turn["urls"] == ["turn:turn.example.jp:3478?transport=udp", "turns:turn.example.jp:5349"]
    assert turn["username"] == "1800000600:room1-guest"
    expected = base64.b64encode(
        hmac.new(b"s3cret", b"1800000600:room1-guest", hashlib.sha1).digest()
    ).decode()
    assert turn["credential"] == expected
    assert len(servers) == 2


def test_no_turn_without_secret_or_urls() -> None:
    assert ice_servers(MediaSettings(turn_urls=("turn:t.example.jp",)), "u", now=0) == []
    assert ice_servers(MediaSettings(turn_secret="x"), "u", now=0) == []
    assert ice_servers(MediaSettings(), "u", now=0) == []


def test_announced_address_replaces_host_candidates() -> None:
    sdp = (
        "v=0\r\nm=video 40000 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 10.0.0.5\r\n"
        "a=candidate:abc 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
        "a=candidate:def 1 udp 1694498815 198.51.100.9 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n"
    )
    out = announce(sdp, "203.0.113.7")
    assert "a=candidate:abc 1 udp 2130706431 203.0.113.7 40000 typ host" in out
    assert "198.51.100.9 40000 typ srflx raddr 10.0.0.5" in out
    assert "c=IN IP4 203.0.113.7" in out
