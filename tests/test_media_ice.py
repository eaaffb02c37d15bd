"""ICE with browsers whose offer has no candidate the server can use: Chrome without camera/microphone
permission offers only mDNS ``<uuid>.local`` host candidates, which a server cannot resolve. The server must
learn the browser's address from its connectivity checks (a peer-reflexive candidate) instead of failing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from media import MediaRooms, MediaSettings
from tests.harness.media import LOOPBACK, Client, connect, wait_for


@pytest.fixture
async def rooms() -> AsyncIterator[MediaRooms]:
    media = MediaRooms(MediaSettings(host_addresses=LOOPBACK))
    yield media
    await media.aclose()


def mdns_only(sdp: str, end_of_candidates: bool = True) -> str:
    """``sdp`` with every candidate's address replaced by an unresolvable mDNS name, as Chrome hides it."""
    lines = []
    for line in sdp.splitlines():
        if line == "a=end-of-candidates" and not end_of_candidates:
            continue
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            parts[4] = f"{uuid.uuid4()}.local"
            line = " ".join(parts)
        elif line.startswith("c=IN IP4 "):
            line = "c=IN IP4 0.0.0.0"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(
    "end_of_candidates", [True, False], ids=["end-of-candidates", "no-end-of-candidates"]
)
async def test_guest_offering_only_mdns_candidates_gets_video_both_ways(
    rooms: MediaRooms, end_of_candidates: bool
) -> None:
    host = await connect(rooms, "r1", "host", camera=True)
    guest = Client(camera=True)
    try:
        offer = mdns_only(await guest.offer(), end_of_candidates)
        assert ".local " in offer and "127.0.0.1" not in offer
        await guest.accept(await rooms.answer("r1", "guest", offer))
        await wait_for(lambda: guest.frames[0] >= 10, within=15, what="the guest sees the host's camera")
        await wait_for(lambda: host.frames[0] >= 10, within=5, what="the host sees the guest's camera")
        room = rooms.room("r1")
        assert room is not None
        ice = room.peers["guest"].pc.getTransceivers()[0].receiver.transport.transport
        assert [c.type for c in ice.getRemoteCandidates()] == ["prflx"]  # learned from the guest's checks
    finally:
        await guest.close()
        await host.close()
