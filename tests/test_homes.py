"""Placement and adoption (signaling/homes.py): two nodes, one redis-server, one database.

A new room goes to the least-loaded live node, even when the host is on another; the rooms of a node whose
heartbeat lapsed are adopted by exactly one live node, rebuilt from the database, and serve sockets again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from core.clock import ManualClock
from documents.library import create_document
from documents.models import DocumentStatus
from recordings.records import record_page_shown
from signaling import rooms
from signaling.homes import Homes
from signaling.models import JoinedVia, RoomRow, RoomState
from signaling.nodes import NodeRegistry
from signaling.protocol import SUBPROTOCOL
from store.models import Role
from tests.harness.live import LiveServer
from tests.harness.redis import RedisServer
from tests.helpers import Seeded, seed_org
from tests.joining import Browser, receive_type
from web.app import create_app
from web.services import services
from web.settings import Settings

pytestmark = pytest.mark.redis

Nodes = tuple[LiveServer, LiveServer, Seeded]


@pytest.fixture
def nodes(settings: Settings, redis_server: RedisServer, clock: ManualClock) -> Iterator[Nodes]:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    shared = replace(settings, redis_url=redis_server.url)
    node_a = LiveServer(create_app(replace(shared, node_id="node-a"), clock=clock))
    node_b = LiveServer(create_app(replace(shared, node_id="node-b"), clock=clock))
    node_a.start()
    node_b.start()
    seeded = node_a.call(seed_org(node_a.app, "acme", {"host@acme.example": Role.HOST}))
    yield node_a, node_b, seeded
    node_b.stop()
    node_a.stop()


async def home_node(node: LiveServer, room_id: str) -> str:
    async with services(node.app).sessions() as db:
        row = await db.get(RoomRow, room_id)
        assert row is not None
        return row.home_node


async def move(node: LiveServer, room_id: str, old: str, new: str) -> None:
    async with services(node.app).sessions.begin() as db:
        assert await rooms.move_home(db, room_id, old, new)


def homes(node: LiveServer) -> Homes:
    found = services(node.app).homes
    assert found is not None
    return found


async def _start_room(host: Browser, guest: Browser) -> dict[str, str]:
    number = (await guest.post_json("/api/numbers")).json()["number"]
    started = await host.post_json("/api/rooms", {"number": number})
    assert started.status_code == 201, started.text
    room: dict[str, str] = started.json()
    return room


async def test_a_new_room_goes_to_the_least_loaded_node(nodes: Nodes) -> None:
    node_a, node_b, _ = nodes
    host, guest = Browser(node_a.url), Browser(node_b.url)
    try:
        await host.sign_in("host@acme.example")
        await guest.open("/")
        # Both idle: the tie goes to the first id, node A.
        node_a.call(homes(node_a).registry.beat())
        node_b.call(homes(node_b).registry.beat())
        first = await _start_room(host, guest)
        assert services(node_a.app).hub.is_home(first["room_id"])
        # Node A now homes a room: the next one goes to node B, though the host asked node A.
        node_a.call(homes(node_a).registry.beat())
        second = await _start_room(host, guest)
        assert services(node_b.app).hub.is_home(second["room_id"])  # open before the host was answered
        assert not services(node_a.app).hub.is_home(second["room_id"])
        assert node_a.call(home_node(node_a, second["room_id"])) == "node-b"
        # The host's socket on node A reaches the home on node B at once (no reconnect needed).
        async with host.websocket(f"/ws/rooms/{second['room_id']}", [SUBPROTOCOL]) as host_ws:
            welcome = await receive_type(host_ws, "welcome")
            assert welcome["role"] == "host"
            # Node B looked dead for a moment and node A adopted the room: the socket is asked to connect
            # to the new home, and B, finding out at its next beat, lets go: never two homes.
            node_a.call(move(node_a, second["room_id"], "node-b", "node-a"))
            hub_a = services(node_a.app).hub
            node_a.call(hub_a.open(second["room_id"], second["connect_id"], RoomState.WAITING, rehome=True))
            assert (await receive_type(host_ws, "welcome"))["role"] == "host"
            node_b.call(homes(node_b).fence())
            assert not services(node_b.app).hub.is_home(second["room_id"])
            assert hub_a.is_home(second["room_id"])
    finally:
        await host.aclose()
        await guest.aclose()


async def test_a_dead_nodes_rooms_are_adopted_once_with_their_memo(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    node_a, node_b, seeded = nodes
    from redis.asyncio import Redis

    host = Browser(node_a.url)
    await host.sign_in("host@acme.example")
    host_id = seeded.users["host@acme.example"]

    async def create() -> list[str]:
        room_ids = []
        async with services(node_a.app).sessions.begin() as db:
            for i in range(4):
                room, _ = await rooms.create_room(
                    db,
                    org_id=seeded.org_id,
                    host_id=host_id,
                    via=JoinedVia.LINK,
                    guest_token=None,
                    camera=True,
                    recording=False,
                    home_node="node-gone",
                    now=0.0,
                    memo_text=f"お客さまのメモ {i}",
                )
                await rooms.set_state(db, room.id, RoomState.ACTIVE, 1.0)
                room_ids.append(room.id)
            # The first room had page 3 of a document on screen when its node died.
            document = await create_document(
                db, org_id=seeded.org_id, owner_id=host_id, name="会社案内.pdf", org_wide=False, size=1
            )
            document.status, document.pages = DocumentStatus.READY, 5
            await db.flush()
            await record_page_shown(db, room_ids[0], document.id, 1, rooms.at(2.0))
            await record_page_shown(db, room_ids[0], document.id, 3, rooms.at(3.0))
            documents.append(document.id)
        return room_ids

    documents: list[int] = []

    def dead() -> list[str]:
        return [n.node_id for n in node_a.call(homes(node_a).registry.dead())]

    def adopted() -> bool:  # by a node's own round, every 2 s
        return all(any(services(n.app).hub.is_home(r) for n in (node_a, node_b)) for r in room_ids)

    try:
        async with contextlib.AsyncExitStack() as stack:
            # A node that beat and then went silent (SIGKILL): its key expires 1 s later, its entry stays.
            client = Redis.from_url(redis_server.url)
            try:
                await NodeRegistry(client, "node-gone", lambda: 4, ttl=1.0).beat()
            finally:
                await client.aclose()
            room_ids = node_a.call(create())
            # The host's sockets, opened while the home is dead: what they say to it is lost.
            sockets = [
                await stack.enter_async_context(host.websocket(f"/ws/rooms/{r}", [SUBPROTOCOL]))
                for r in room_ids
            ]
            for _ in range(100):  # bounded: 10 s
                if dead() == ["node-gone"] or adopted():
                    break
                await asyncio.sleep(0.1)
            # Both nodes adopt at the same moment (a barrier across their loops), besides their own rounds.
            futures = [asyncio.run_coroutine_threadsafe(homes(n).adopt(), n.loop) for n in (node_a, node_b)]
            await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
            for i, room_id in enumerate(room_ids):
                homed = [n for n in (node_a, node_b) if services(n.app).hub.is_home(room_id)]
                assert len(homed) == 1, room_id  # exactly one home
                assert node_a.call(home_node(node_a, room_id)) == services(homed[0].app).settings.node_id
                live = services(homed[0].app).hub.room(room_id)
                assert live is not None and live.memo.text() == f"お客さまのメモ {i}"  # from the database
                shown = live.shared.info
                assert (shown and shown.id, live.shared.page) == ((documents[0], 3) if i == 0 else (None, 1))
            # The new home asked the sockets to connect again: welcomed without reconnecting, and on the
            # page that was on screen.
            for i, socket in enumerate(sockets):
                assert (await receive_type(socket, "welcome", within=5))["role"] == "host"
                on_screen = await receive_type(socket, "doc.state", within=5)
                document = on_screen["document"]
                assert (document and document["id"], on_screen["page"]) == (
                    (documents[0], 3) if i == 0 else (None, 1)
                )
        # The dead node, left with no room, is forgotten at the next round.
        node_a.call(homes(node_a).adopt())
        assert dead() == []
        # Its rooms serve new sockets too, on whichever node the browser reaches.
        for room_id in room_ids:
            async with host.websocket(f"/ws/rooms/{room_id}", [SUBPROTOCOL]) as host_ws:
                assert (await receive_type(host_ws, "welcome"))["role"] == "host"
    finally:
        await host.aclose()
