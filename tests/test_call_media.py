"""Video through the whole server: offers over the room channel, answers from the home node's relay.

The host and the guest are aiortc stand-ins for browsers (tests/harness/media.py) that talk to the live app
over real room-channel WebSockets, as the call page does; the relay is the app's own ``MediaRooms``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from media import MediaRooms
from signaling.protocol import SUBPROTOCOL, Role
from store.models import Role as UserRole
from tests.harness.live import LiveServer
from tests.harness.media import Client, wait_for
from tests.helpers import seed_org
from tests.joining import Browser, receive_type, until
from web.services import services


@pytest.fixture
async def call(live_server: LiveServer) -> AsyncIterator[tuple[str, Browser, Browser]]:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": UserRole.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    try:
        yield room_id, host, guest
    finally:
        await host.aclose()
        await guest.aclose()


def channel(browser: Browser, room_id: str) -> Any:
    return browser.websocket(f"/ws/rooms/{room_id}", subprotocols=[SUBPROTOCOL])


async def negotiate(ws: Any, client: Client, restart: bool = False) -> None:
    await ws.send(json.dumps({"type": "media.offer", "sdp": await client.offer(), "restart": restart}))
    answer = await receive_type(ws, "media.answer", within=10)
    await client.accept(answer["sdp"])


async def test_offers_over_the_room_channel_carry_video_both_ways(
    live_server: LiveServer, call: tuple[str, Browser, Browser]
) -> None:
    room_id, host, guest = call
    host_client, guest_client = Client(), Client()
    try:
        async with channel(host, room_id) as host_ws, channel(guest, room_id) as guest_ws:
            await receive_type(host_ws, "welcome")
            await receive_type(guest_ws, "welcome")
            await negotiate(host_ws, host_client)
            await negotiate(guest_ws, guest_client)
            await wait_for(lambda: guest_client.frames[0] > 10, what="the host's camera at the guest")
            await wait_for(lambda: host_client.frames[0] > 10, what="the guest's camera at the host")

            # The guest's browser reports a refused camera: the host hears of it (its panels follow).
            await guest_ws.send(
                json.dumps({"type": "media.state", "camera": "blocked", "screen": False, "audio": False})
            )
            told = await until(host_ws, "media.peer", role=Role.GUEST.value)
            assert told["camera"] == "blocked"

            # A restart (a failed connection, or 再読み込み): a fresh peer connection, video flows again.
            await guest_client.close()
            guest_client = Client()
            await negotiate(guest_ws, guest_client, restart=True)
            await wait_for(lambda: guest_client.frames[0] > 10, what="video after the guest's restart")
            before = host_client.frames[0]
            await wait_for(
                lambda: host_client.frames[0] > before + 10, what="the guest's video after its restart"
            )
    finally:
        await host_client.close()
        await guest_client.close()


async def test_a_broken_offer_gets_a_clear_error_and_the_room_goes_on(
    live_server: LiveServer, call: tuple[str, Browser, Browser]
) -> None:
    room_id, host, _guest = call
    async with channel(host, room_id) as ws:
        await receive_type(ws, "welcome")
        await ws.send(json.dumps({"type": "media.offer", "sdp": "v=0\r\nnot an offer\r\n"}))
        error = await receive_type(ws, "error", within=10)
        assert error["code"] == "media_failed"
        assert "映像を接続できませんでした" in error["message"]
        await ws.send(json.dumps({"type": "ping"}))
        await receive_type(ws, "pong")


async def test_ending_the_meeting_closes_its_peer_connections(
    live_server: LiveServer, call: tuple[str, Browser, Browser]
) -> None:
    room_id, host, _guest = call
    client = Client()
    try:
        async with channel(host, room_id) as ws:
            await receive_type(ws, "welcome")
            await negotiate(ws, client)
            media = services(live_server.app).media
            assert live_server.call(_seats(media, room_id)) == {"host"}
            await ws.send(json.dumps({"type": "end"}))
            await receive_type(ws, "ended")
        await wait_for(
            lambda: live_server.call(_seats(media, room_id)) == set(), what="the room's media closed"
        )
    finally:
        await client.close()


async def _seats(media: MediaRooms, room_id: str) -> set[str]:
    room = media.room(room_id)
    return set(room.peers) if room is not None else set()
