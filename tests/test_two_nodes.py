"""Two nodes, one redis-server, one database: a guest on node B meets a host on node A."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from core.clock import ManualClock
from signaling.protocol import SUBPROTOCOL
from store.models import Role
from tests.harness.live import LiveServer
from tests.harness.media import Client
from tests.harness.redis import RedisServer
from tests.helpers import seed_org
from tests.joining import Browser, receive, receive_type, until
from web.app import create_app
from web.services import services
from web.settings import Settings

pytestmark = pytest.mark.redis


@pytest.fixture
def nodes(
    settings: Settings, redis_server: RedisServer, clock: ManualClock
) -> Iterator[tuple[LiveServer, LiveServer]]:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    shared = replace(settings, redis_url=redis_server.url)
    node_a = LiveServer(create_app(replace(shared, node_id="node-a"), clock=clock))
    node_b = LiveServer(create_app(replace(shared, node_id="node-b"), clock=clock))
    node_a.start()
    node_b.start()
    node_a.call(seed_org(node_a.app, "acme", {"host@acme.example": Role.HOST}))
    yield node_a, node_b
    node_b.stop()
    node_a.stop()


async def test_guest_on_one_node_meets_host_on_another(nodes: tuple[LiveServer, LiveServer]) -> None:
    node_a, node_b = nodes
    host, guest = Browser(node_a.url), Browser(node_b.url)
    try:
        await host.sign_in("host@acme.example")
        await guest.open("/")
        issued = await guest.post_json("/api/numbers")
        number = issued.json()["number"]
        async with guest.websocket("/ws/lobby") as lobby:
            started = await host.post_json("/api/rooms", {"number": number})
            assert started.status_code == 201, started.text
            room = started.json()
            assert (await receive(lobby))["url"] == room["url"]  # admitted across nodes via Redis
        assert services(node_a.app).hub.is_home(room["room_id"]) and not services(node_b.app).hub.is_home(
            room["room_id"]
        )

        path = f"/ws/rooms/{room['room_id']}"
        async with host.websocket(path, [SUBPROTOCOL]) as host_ws:
            await receive_type(host_ws, "welcome")
            async with guest.websocket(path, [SUBPROTOCOL]) as guest_ws:
                welcome = await receive_type(guest_ws, "welcome")
                assert welcome["peers"]["host"] == "connected"
                await until(host_ws, "presence", role="guest", presence="connected")
                # The guest's video offer crosses to the home node's relay, and its answer comes back.
                client = Client()
                try:
                    offer = {"type": "media.offer", "sdp": await client.offer()}
                    await guest_ws.send(json.dumps(offer))
                    await client.accept((await receive_type(guest_ws, "media.answer", within=10))["sdp"])
                    home = services(node_a.app).media.room(room["room_id"])
                    assert home is not None and set(home.peers) == {"guest"}
                    assert services(node_b.app).media.room(room["room_id"]) is None
                finally:
                    await client.close()
                await host_ws.send('{"type": "end"}')
                assert (await receive_type(guest_ws, "ended"))["by"] == "host"
        # A number is single-use across nodes too.
        reused = await host.post_json("/api/rooms", {"number": number})
        assert reused.status_code == 409
    finally:
        await host.aclose()
        await guest.aclose()
