"""The room hub's two paths: sockets on the room's home node get their frames through in-process queues,
sockets on another node through the broker. A second hub on the same in-process broker stands for a second
node (tests/test_two_nodes.py does the same over a real redis-server)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from core.clock import ManualClock
from signaling.connections import Outgoing, Participant
from signaling.hub import RoomHub
from signaling.memo import UPDATE, parse_sync_message
from signaling.protocol import CloseCode, End, Ping, Role
from signaling.redis_broker import RedisBroker
from signaling.rooms import DatabaseRoomStore
from store.models import Role as UserRole
from tests.harness.redis import RedisServer
from tests.helpers import open_room, seed_org, store_room
from tests.test_memo import Client, rows
from web.app import create_app
from web.meetings import find_document
from web.services import services
from web.settings import Settings


async def next_item(participant: Participant, iterator: AsyncIterator[Outgoing] | None = None) -> Outgoing:
    return await asyncio.wait_for((iterator or participant.outgoing().__aiter__()).__anext__(), 5.0)


async def frame_of(
    participant: Participant, iterator: AsyncIterator[Outgoing], kind: str, **fields: Any
) -> dict[str, Any]:
    """The next frame of ``kind`` with these fields (bounded: 20 frames, 5 s each)."""
    for _ in range(20):
        item = await next_item(participant, iterator)
        if item.message and item.message["type"] == kind and fields.items() <= item.message.items():
            return item.message
    raise AssertionError(f"no {kind} frame with {fields}")


async def frames_until_close(participant: Participant) -> tuple[list[str], CloseCode | None]:
    kinds: list[str] = []
    async for item in participant.outgoing():
        if item.close is not None:
            return kinds, item.close
        assert item.message is not None
        kinds.append(item.message["type"])
    return kinds, None


@pytest.fixture
async def room_id(app: Starlette) -> str:
    room_id, _connect_id = await open_room(
        app, await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    )
    return room_id


async def test_local_sockets_get_the_last_frames_and_the_close_code_when_the_room_ends(
    app: Starlette, room_id: str
) -> None:
    hub: RoomHub = services(app).hub
    async with hub.participate(room_id, Role.HOST) as host, hub.participate(room_id, Role.GUEST) as guest:
        assert hub._local[room_id].keys() == {host.connection, guest.connection}  # no broker in between
        await host.send(End(type="end"))
        for _ in range(100):  # the home ends right after its last effects (bounded wait)
            if not hub.is_home(room_id):
                break
            await asyncio.sleep(0.02)
        assert not hub.is_home(room_id)
        # A socket slower than the home (it has read nothing yet) still gets what was queued for it.
        kinds, close = await asyncio.wait_for(frames_until_close(guest), 5.0)
    assert "welcome" in kinds and kinds[-1] == "ended" and close == CloseCode.ROOM_ENDED


async def test_a_socket_on_another_node_goes_through_the_broker(app: Starlette, room_id: str) -> None:
    home: RoomHub = services(app).hub
    other = RoomHub(home.broker, DatabaseRoomStore(services(app).sessions, find_document), clock=home.clock)
    try:
        async with (
            home.participate(room_id, Role.HOST) as host,
            other.participate(room_id, Role.GUEST) as guest,
        ):
            assert not other.is_home(room_id) and guest.connection not in home._local[room_id]
            seen: list[dict[str, Any]] = []
            iterator = guest.outgoing().__aiter__()
            for _ in range(10):
                item = await next_item(guest, iterator)
                assert item.message is not None
                seen.append(item.message)
                if item.message["type"] == "welcome":
                    break
            assert seen[-1]["role"] == "guest"
            assert home._remote[room_id] == {guest.connection}
            # A message from the remote socket crosses as JSON and is validated at the home again.
            await guest.send(Ping(type="ping"))
            for _ in range(10):
                item = await next_item(guest, iterator)
                if item.message is not None and item.message["type"] == "pong":
                    break
            else:
                raise AssertionError("no pong for the remote socket")
            await host.send(End(type="end"))
            for _ in range(10):
                item = await next_item(guest, iterator)
                if item.close is not None:
                    assert item.close == CloseCode.ROOM_ENDED
                    break
            else:
                raise AssertionError("the remote socket was not closed")
    finally:
        await other.aclose()


@pytest.mark.redis
async def test_a_guests_end_from_another_node_survives_the_homes_lost_redis_connections(
    app: Starlette, redis_server: RedisServer
) -> None:
    """終了 crosses from the guest's node to the room's home over Redis. The home's connections to Redis are
    killed just before: with pub/sub it would be published to nobody and lost; the queue delivers it."""
    from redis.asyncio import Redis

    seeded = await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    room_id, connect_id = await store_room(app, seeded, home_node="a")
    clients = [Redis.from_url(redis_server.url) for _ in range(3)]
    await clients[0].flushdb()
    store = DatabaseRoomStore(services(app).sessions, find_document)
    home = RoomHub(RedisBroker(clients[0]), store, clock=services(app).clock)
    other = RoomHub(RedisBroker(clients[1]), store, clock=services(app).clock)
    try:
        await home.open(room_id, connect_id)
        async with (
            home.participate(room_id, Role.HOST) as host,
            other.participate(room_id, Role.GUEST) as guest,
        ):
            host_frames, guest_frames = host.outgoing().__aiter__(), guest.outgoing().__aiter__()
            assert (await frame_of(guest, guest_frames, "welcome"))["role"] == "guest"
            await frame_of(host, host_frames, "presence", presence="connected")
            killed = await clients[2].client_kill_filter(_type="normal", skipme=True)
            killed += await clients[2].client_kill_filter(_type="pubsub", skipme=True)
            assert killed >= 2
            await guest.send(End(type="end"))
            await frame_of(host, host_frames, "presence", presence="left")
    finally:
        await other.aclose()
        await home.aclose()
        for client in clients:
            await client.aclose()


async def test_stopping_the_server_ends_a_room_left_open_with_both_seats_taken(
    settings: Settings, clock: ManualClock
) -> None:
    """Both sockets go (their disconnects reach the home's inbox) just as the server stops. On Python 3.11
    asyncio.wait_for handed the home such an event and dropped the cancellation that came with it, so the
    home kept waiting for events and the server's stop waited on the home for ever."""
    app = create_app(settings, clock=clock)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    seeded = await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    room_id, _connect_id = await open_room(app, seeded)
    hub: RoomHub = services(app).hub
    async with hub.participate(room_id, Role.HOST) as host, hub.participate(room_id, Role.GUEST) as guest:
        await next_item(host)
        await next_item(guest)
    stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
    done, _pending = await asyncio.wait({stopping}, timeout=10)  # waits without cancelling anything
    assert stopping in done, "the server's stop is still waiting for the room"
    assert not hub.is_home(room_id)


async def test_keystrokes_across_nodes_take_the_fast_path_in_order(app: Starlette, room_id: str) -> None:
    """Host on the home, guest on another node, typing at once: the home takes both sides' memo updates
    through the fast path (the guest's from its broker reader, the host's with a publish that does not
    wait), and each side receives the other's in the order typed, the stored log holding every one."""
    home: RoomHub = services(app).hub
    other = RoomHub(home.broker, DatabaseRoomStore(services(app).sessions, find_document), clock=home.clock)
    clients = {Role.HOST: Client(), Role.GUEST: Client()}
    typed: dict[Role, list[bytes]] = {Role.HOST: [], Role.GUEST: []}
    try:
        async with (
            home.participate(room_id, Role.HOST) as host,
            other.participate(room_id, Role.GUEST) as guest,
        ):
            seats = {Role.HOST: host, Role.GUEST: guest}
            iterators = {role: seat.outgoing().__aiter__() for role, seat in seats.items()}
            await frame_of(guest, iterators[Role.GUEST], "welcome")
            assert home._remote[room_id] == {guest.connection}
            await home.settle(room_id)
            inline_before = home.handled_inline

            async def type_(role: Role) -> None:
                for i in range(40):
                    frame = clients[role].edit(len(str(clients[role].text)), "見積a"[i % 3])
                    typed[role].append(parse_sync_message(base64.b64decode(frame.data))[1])
                    await seats[role].send(frame)

            async def receive(role: Role) -> list[bytes]:
                got: list[bytes] = []
                while len(got) < 40:
                    item = await next_item(seats[role], iterators[role])
                    message = item.message
                    assert message is not None and item.close is None
                    if message["type"] == "memo.sync":
                        kind, payload = parse_sync_message(base64.b64decode(message["data"]))
                        if kind == UPDATE:
                            got.append(payload)
                return got

            receivers = {role: asyncio.create_task(receive(role)) for role in seats}
            await asyncio.gather(type_(Role.HOST), type_(Role.GUEST))
            to_host, to_guest = await asyncio.gather(receivers[Role.HOST], receivers[Role.GUEST])
            assert to_host == typed[Role.GUEST] and to_guest == typed[Role.HOST]
            assert home.handled_inline - inline_before >= 60, "the keystrokes did not take the fast path"
            await home.settle(room_id)
            stored = await rows(app, room_id)
            assert {role: [r.update for r in stored if r.author == role.value] for role in seats} == typed
            await host.send(End(type="end"))
            await home.settle(room_id)
    finally:
        await other.aclose()


@pytest.mark.redis
async def test_a_keystroke_lost_on_the_way_to_another_node_has_that_socket_resync_without_more_typing(
    app: Starlette, redis_server: RedisServer
) -> None:
    """The host's keystroke goes through the fast path in a pipeline Redis does not answer in time (CLIENT
    PAUSE): the frame to the guest on the other node is lost. Nobody types again, yet the home tells the
    guest's node to re-sync (RESUMED) once Redis answers, and the guest is welcomed afresh (whole memo)."""
    from redis.asyncio import Redis

    seeded = await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    room_id, connect_id = await store_room(app, seeded, home_node="a")
    clients = [Redis.from_url(redis_server.url) for _ in range(3)]
    await clients[0].flushdb()
    store = DatabaseRoomStore(services(app).sessions, find_document)
    home_broker = RedisBroker(clients[0])
    home_broker.batcher.timeout = 0.2
    home = RoomHub(home_broker, store, clock=services(app).clock)
    home.resync_retry = 0.1
    other = RoomHub(RedisBroker(clients[1]), store, clock=services(app).clock)
    try:
        await home.open(room_id, connect_id)
        async with (
            home.participate(room_id, Role.HOST) as host,
            other.participate(room_id, Role.GUEST) as guest,
        ):
            host_frames, guest_frames = host.outgoing().__aiter__(), guest.outgoing().__aiter__()
            await frame_of(guest, guest_frames, "welcome")
            await frame_of(host, host_frames, "presence", presence="connected")
            await home.settle(room_id)
            inline_before = home.handled_inline
            await clients[2].execute_command("CLIENT", "PAUSE", "600", "ALL")
            await host.send(Client().edit(0, "見積"))
            assert home.handled_inline == inline_before + 1  # the fast path took it
            assert (await frame_of(guest, guest_frames, "welcome"))["role"] == "guest"
            assert room_id not in home._gapped
    finally:
        await other.aclose()
        await home.aclose()
        for client in clients:
            await client.aclose()
