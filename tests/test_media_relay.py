"""The media relay with aiortc peers as stand-in browsers, over loopback (run inside ``unshare --net``):
encoded passthrough both ways on camera, screen and audio, never decoding, keyframe requests forwarded,
rejoin with continuous sequence numbers, and rooms isolated from each other."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import aiortc.rtcrtpreceiver
import pytest

from core.clock import RunningClock
from media import MediaRooms, MediaSettings
from media.peer import KEYFRAME_MIN_INTERVAL
from media.rooms import Room
from signaling.sit_in import OBSERVED
from tests.harness.media import LOOPBACK, Client, connect, wait_for, watch

pytestmark = pytest.mark.both_loops  # media.hooks reads sockets differently on uvloop and asyncio


class Clients:
    """Stand-in browsers of a test, closed at its end."""

    def __init__(self, rooms: MediaRooms) -> None:
        self.rooms = rooms
        self.all: list[Client] = []

    async def join(self, room_id: str, seat: str, **kwargs: Any) -> Client:
        client = await connect(self.rooms, room_id, seat, **kwargs)
        self.all.append(client)
        return client

    async def watch(self, room_id: str, seat: str) -> tuple[Client, str]:
        client, answer = await watch(self.rooms, room_id, seat, OBSERVED)
        self.all.append(client)
        return client, answer


@pytest.fixture
def clock() -> RunningClock:
    return RunningClock()


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reached the event loop's exception handler (a relay hook failing per packet lands there: the
    test fails on any)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    loop.set_exception_handler(None)
    assert not errors, [context.get("exception") or context.get("message") for context in errors]


@pytest.fixture
async def rooms(clock: RunningClock, loop_errors: list[dict[str, Any]]) -> AsyncIterator[MediaRooms]:
    media = MediaRooms(MediaSettings(host_addresses=LOOPBACK), clock=clock)
    yield media
    await media.aclose()


@pytest.fixture
async def clients(rooms: MediaRooms) -> AsyncIterator[Clients]:
    made = Clients(rooms)
    yield made
    for client in made.all:
        await client.close()


def grows(value: Callable[[], int], by: int) -> Callable[[], bool]:
    start = value()
    return lambda: value() >= start + by


def frames_on(client: Client, index: int) -> int:
    return client.frames[index]


def has_frames(client: Client, count: int) -> bool:
    return client.frames[0] >= count


def room(rooms: MediaRooms, room_id: str) -> Room:
    found = rooms.room(room_id)
    assert found is not None
    return found


async def test_camera_screen_and_audio_flow_both_ways(clients: Clients) -> None:
    host = await clients.join("r1", "host", camera=True, screen=True, audio=True)
    guest = await clients.join("r1", "guest", camera=True, screen=True, audio=True)
    for client in (host, guest):
        for index in (0, 1, 2):
            await wait_for(grows(partial(frames_on, client, index), 15), what=f"frames on m-line {index}")
    counters = clients.rooms.counters("r1")
    assert counters.packets_forwarded > 60
    assert counters.forwarding_errors == 0


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The frame queues fed by every decoder aiortc creates (a decoder thread feeds one receiver's track)."""
    created: list[object] = []
    feeding = threading.local()
    real_worker = aiortc.rtcrtpreceiver.decoder_worker
    real_get_decoder = aiortc.rtcrtpreceiver.get_decoder  # type: ignore[attr-defined]

    def worker(loop: Any, input_q: Any, output_q: Any, *args: Any) -> None:
        feeding.queue = output_q
        real_worker(loop, input_q, output_q, *args)

    def get_decoder(codec: Any) -> Any:
        created.append(getattr(feeding, "queue", None))
        return real_get_decoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "decoder_worker", worker)
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
    return created


async def test_the_server_never_decodes(clients: Clients, decoders: list[object]) -> None:
    host = await clients.join("r1", "host", camera=True, screen=True, audio=True)
    guest = await clients.join("r1", "guest", camera=True, audio=True)
    await wait_for(lambda: guest.frames[0] >= 20 and guest.frames[1] >= 20 and guest.frames[2] >= 20)
    await wait_for(lambda: host.frames[0] >= 20)
    server_queues = [
        transceiver.receiver.track._queue  # type: ignore[attr-defined]
        for peer in room(clients.rooms, "r1").peers.values()
        for transceiver in peer.pc.getTransceivers()
        if transceiver.receiver.track is not None
    ]
    assert len(server_queues) == 6
    # the spy works: the guest's client decoded what it received...
    assert any(
        queue is guest.transceivers[0].receiver.track._queue  # type: ignore[attr-defined]
        for queue in decoders
    )
    # ...and no decoder was ever made for the server's receivers
    assert not [queue for queue in decoders if any(queue is mine for mine in server_queues)]
    assert clients.rooms.counters("r1").packets_forwarded > 100


async def test_keyframe_request_reaches_the_publisher(clients: Clients, clock: RunningClock) -> None:
    host = await clients.join("r1", "host", camera=True)
    guest = await clients.join("r1", "guest", camera=False)
    await wait_for(lambda: guest.frames[0] >= 10, what="guest sees the host's camera")
    assert host.keyframe_requests[0] >= 1  # asked when the guest connected / the stream started
    clock.advance(KEYFRAME_MIN_INTERVAL)  # past the server's keyframe request spacing
    before, forwarded = host.keyframe_requests[0], clients.rooms.counters("r1").keyframe_requests_forwarded
    await guest.send_pli(0)
    await wait_for(
        lambda: host.keyframe_requests[0] > before, within=2, what="the host's sender asked for a keyframe"
    )
    assert clients.rooms.counters("r1").keyframe_requests_forwarded == forwarded + 1
    assert host.keyframe_requests[1] == 0  # the screen m-line was not asked


async def test_rejoin_keeps_the_other_sides_stream_continuous(clients: Clients) -> None:
    host = await clients.join("r1", "host", camera=True)
    guest = await clients.join("r1", "guest", camera=True)
    await wait_for(lambda: guest.frames[0] >= 10, what="first frames")
    before = len(guest.seqs[0])
    host_again = await clients.join("r1", "host", camera=True)  # the browser's fresh pc (restart: true)
    await host.close()
    await wait_for(grows(lambda: guest.frames[0], 20), what="frames after the rejoin")
    await wait_for(lambda: host_again.frames[0] >= 5, what="the rejoined host sees the guest")
    assert host_again.keyframe_requests[0] >= 1
    seqs = guest.seqs[0]
    assert len(seqs) > before + 10
    gaps = [(b - a) & 0xFFFF for a, b in zip(seqs, seqs[1:], strict=False)]
    assert all(gap == 1 for gap in gaps), f"sequence numbers jump: {sorted(set(gaps))}"
    assert len(guest.transceivers[0].receiver.getSynchronizationSources()) == 1  # one stream, one SSRC


async def test_rooms_are_isolated(clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    rooms = clients.rooms
    pairs = {}
    for room_id in ("r1", "r2", "r3"):
        pairs[room_id] = (await clients.join(room_id, "host"), await clients.join(room_id, "guest"))
    for _, guest in pairs.values():
        await wait_for(partial(has_frames, guest, 5), what="first frames")

    def broken(*args: object) -> None:
        raise RuntimeError("forwarding broke")

    monkeypatch.setattr(room(rooms, "r2"), "forward", broken)
    await rooms.close_room("r1")
    for room_id in ("r2", "r3"):
        assert rooms.room(room_id) is not None
    await wait_for(grows(lambda: pairs["r3"][1].frames[0], 15), what="r3 keeps forwarding")
    assert rooms.counters("r2").forwarding_errors > 0
    assert rooms.counters("r3").forwarding_errors == 0
    for client in pairs["r2"]:
        assert client.pc.connectionState == "connected"  # the broken room's connections are still up
    monkeypatch.undo()
    await wait_for(grows(lambda: pairs["r2"][1].frames[0], 10), what="r2 resumes once fixed")
    assert rooms.counters().packets_forwarded > 0


async def test_forged_srtp_is_dropped_and_counted(clients: Clients) -> None:
    host = await clients.join("r1", "host", camera=True)
    guest = await clients.join("r1", "guest", camera=True)
    await wait_for(lambda: guest.frames[0] >= 5, what="first frames")
    (server,) = host.pc.getTransceivers()[0].receiver.transport.transport.getRemoteCandidates()
    dropped = clients.rooms.counters("r1").packets_dropped
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        for seq in range(5):  # RTP-looking, but not authenticated with the session's keys
            udp.sendto(bytes([0x80, 96, 0, seq]) + bytes(200), (server.ip, server.port))
    finally:
        udp.close()
    await wait_for(lambda: clients.rooms.counters("r1").packets_dropped >= dropped + 5, what="drops counted")
    await wait_for(grows(lambda: guest.frames[0], 10), what="forwarding goes on")
    assert clients.rooms.counters("r1").forwarding_errors == 0


async def test_a_manager_sitting_in_gets_both_cameras_and_screens_and_sends_nothing(clients: Clients) -> None:
    host = await clients.join("r1", "host", camera=True, screen=True, size=(160, 120))
    guest = await clients.join("r1", "guest", camera=True, size=(128, 96))
    watcher, answer = await clients.watch("r1", "observer:c1")
    # m-lines 0-3: host camera, guest camera, host screen, guest screen (the guest shares no screen)
    await wait_for(lambda: min(watcher.frames[:3]) >= 15, within=10, what="the observer's three streams")
    assert watcher.sizes[:3] == [(160, 120), (128, 96), (192, 108)] and watcher.frames[3] == 0
    # It offered sendrecv with a camera, as a tampered page could: the server only sends to it.
    assert answer.count("a=sendonly") == 4 and "a=sendrecv" not in answer
    assert not room(clients.rooms, "r1").peers["observer:c1"].inbounds
    # The participants still see each other and nothing of the observer's (64x48) camera.
    before = guest.frames[0], host.frames[0]
    await wait_for(lambda: guest.frames[0] >= before[0] + 15 and host.frames[0] >= before[1] + 15)
    assert guest.sizes[0] == (160, 120) and host.sizes[0] == (128, 96)
    # Its keyframe requests reach the publisher of what it watches (the guest's camera on its m-line 1).
    asked = guest.keyframe_requests[0]
    await watcher.send_pli(1)
    await wait_for(lambda: guest.keyframe_requests[0] > asked, what="a keyframe request at the guest")
    await clients.rooms.leave("r1", "observer:c1")
    assert set(room(clients.rooms, "r1").peers) == {"host", "guest"}
