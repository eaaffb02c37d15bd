"""Joining end to end over real sockets, on the in-process and the Redis backends: numbers, rooms, the room
channel, presence, 終了 and rejoining. Time rules move a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from core.clock import ManualClock
from signaling.protocol import SUBPROTOCOL, CloseCode
from store.models import Role
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import BACKENDS, Browser, on_backend, receive, receive_type, until
from web.services import services
from web.settings import Settings

V1 = [SUBPROTOCOL]


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_backend(request, settings)


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    live_server.call(
        seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST, "other@acme.example": Role.HOST})
    )
    yield live_server


@pytest.fixture
async def host(server: LiveServer) -> AsyncIterator[Browser]:
    browser = Browser(server.url)
    await browser.sign_in("host@acme.example")
    yield browser
    await browser.aclose()


@pytest.fixture
async def guest(server: LiveServer) -> AsyncIterator[Browser]:
    browser = Browser(server.url)
    await browser.open("/")
    yield browser
    await browser.aclose()


async def issue(guest: Browser) -> str:
    response = await guest.post_json("/api/numbers")
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["number"]) == 4 and body["number"].isdigit() and body["expires_in"] == 120
    return body["number"]  # type: ignore[no-any-return]


async def start(host: Browser, number: str) -> dict:  # type: ignore[type-arg]
    response = await host.post_json("/api/rooms", {"number": number, "camera": True, "recording": False})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_number_lets_the_guest_in_and_host_end_closes_both(host: Browser, guest: Browser) -> None:
    number = await issue(guest)
    async with guest.websocket("/ws/lobby") as lobby:
        room = await start(host, number)
        admitted = await receive(lobby)
    assert admitted == {"type": "admitted", "url": room["url"]}
    assert len(room["connect_id"]) == 7 and room["connect_id"].isdigit()
    assert (await host.open(room["url"])).status_code == 200
    assert (await guest.open(room["url"])).status_code == 200
    ws_path = f"/ws/rooms/{room['room_id']}"
    async with host.websocket(ws_path, V1) as host_ws:
        welcome = await receive_type(host_ws, "welcome")
        assert welcome["role"] == "host" and welcome["room"]["connect_id"] == room["connect_id"]
        assert welcome["peers"]["guest"] == "absent"
        guest_ws = await guest.websocket(ws_path, V1)
        guest_welcome = await receive_type(guest_ws, "welcome")
        assert guest_welcome["role"] == "guest" and guest_welcome["peers"]["host"] == "connected"
        assert (await receive_type(host_ws, "presence")) == {
            "type": "presence",
            "role": "guest",
            "presence": "connected",
        }
        await host_ws.send('{"type": "ping"}')
        assert (await receive_type(host_ws, "pong"))["type"] == "pong"
        await host_ws.send('{"type": "end"}')
        assert (await receive_type(guest_ws, "ended"))["by"] == "host"
        with pytest.raises(ConnectionClosed) as closed:
            await receive(guest_ws)
        assert closed.value.rcvd.code == CloseCode.ROOM_ENDED  # type: ignore[union-attr]
        await guest_ws.close()
    page = await guest.open(room["url"])
    assert 'data-ended="1"' in page.text
    async with guest.websocket(ws_path, V1) as again:
        with pytest.raises(ConnectionClosed) as refused:
            await receive(again)
        assert refused.value.rcvd.code == CloseCode.ROOM_ENDED  # type: ignore[union-attr]


async def test_guest_end_leaves_the_host_in_the_room(host: Browser, guest: Browser) -> None:
    room = await start(host, await issue(guest))
    ws_path = f"/ws/rooms/{room['room_id']}"
    async with host.websocket(ws_path, V1) as host_ws, guest.websocket(ws_path, V1) as guest_ws:
        await receive_type(guest_ws, "welcome")
        await receive_type(host_ws, "welcome")
        await guest_ws.send('{"type": "end"}')
        await until(host_ws, "presence", role="guest", presence="left")
        with pytest.raises(ConnectionClosed) as closed:
            await receive_type(guest_ws, "never")
        assert closed.value.rcvd.code == CloseCode.LEFT  # type: ignore[union-attr]
        await host_ws.send('{"type": "ping"}')
        assert (await receive_type(host_ws, "pong"))["type"] == "pong"  # the host's room goes on


async def test_only_the_issuing_browser_and_the_host_may_enter(
    server: LiveServer, host: Browser, guest: Browser
) -> None:
    room = await start(host, await issue(guest))
    stranger = Browser(server.url)
    colleague = Browser(server.url)
    try:
        await stranger.open("/")
        assert (await stranger.open(room["url"])).status_code == 404
        async with stranger.websocket(f"/ws/rooms/{room['room_id']}", V1) as ws:
            with pytest.raises(ConnectionClosed) as refused:
                await receive(ws)
            assert refused.value.rcvd.code == CloseCode.ROOM_NOT_FOUND  # type: ignore[union-attr]
        await colleague.sign_in("other@acme.example")
        assert (await colleague.open(room["url"])).status_code == 404
    finally:
        await stranger.aclose()
        await colleague.aclose()


async def test_number_errors_are_distinct_and_the_host_is_locked_after_five(
    host: Browser, guest: Browser, clock: ManualClock
) -> None:
    number = await issue(guest)
    clock.advance(119.9)
    await start(host, number)  # accepted at 119.9 s
    used = await host.post_json("/api/rooms", {"number": number})
    assert used.status_code == 409 and used.json()["error"]["code"] == "number_used"
    assert "すでに使用" in used.json()["error"]["message"]
    late = await issue(guest)
    clock.advance(120.0)
    expired = await host.post_json("/api/rooms", {"number": late})
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "number_expired"
    unknown_number = "0000" if late != "0000" else "0001"
    # The "used" failure was 120 s ago, outside the one-minute window: expired + 4 unknown = 5 wrong.
    for _ in range(4):
        unknown = await host.post_json("/api/rooms", {"number": unknown_number})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "number_unknown"
    locked = await host.post_json("/api/rooms", {"number": await issue(guest)})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "number_locked"
    assert "ロック" in locked.json()["error"]["message"] and int(locked.headers["retry-after"]) > 0
    clock.advance(61)
    assert (await host.post_json("/api/rooms", {"number": await issue(guest)})).status_code == 201


async def test_issuing_is_rate_limited_per_address(guest: Browser) -> None:
    for _ in range(20):
        assert (await guest.post_json("/api/numbers")).status_code == 201
    refused = await guest.post_json("/api/numbers")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"


async def test_rejoin_within_the_grace_period_and_not_after(
    server: LiveServer, host: Browser, guest: Browser, clock: ManualClock
) -> None:
    room = await start(host, await issue(guest))
    ws_path = f"/ws/rooms/{room['room_id']}"
    async with host.websocket(ws_path, V1) as host_ws:
        await receive_type(host_ws, "welcome")
        async with guest.websocket(ws_path, V1) as guest_ws:
            await receive_type(guest_ws, "welcome")
        await until(host_ws, "presence", role="guest", presence="reconnecting")
        clock.advance(299)
        async with guest.websocket(ws_path, V1) as guest_ws:
            assert (await receive_type(guest_ws, "welcome"))["role"] == "guest"  # no new number needed
        await until(host_ws, "presence", role="guest", presence="connected")
        await until(host_ws, "presence", role="guest", presence="reconnecting")
        clock.advance(300)
        async with guest.websocket(ws_path, V1) as late:
            with pytest.raises(ConnectionClosed) as refused:
                await receive(late)
            assert refused.value.rcvd.code == CloseCode.REJOIN_EXPIRED  # type: ignore[union-attr]
        server.call(services(server.app).hub.poke(room["room_id"]))
        await until(host_ws, "presence", role="guest", presence="left")


async def test_bad_frames_get_an_error_and_never_hurt_another_room(
    host: Browser, guest: Browser, server: LiveServer
) -> None:
    first = await start(host, await issue(guest))
    other_guest = Browser(server.url)
    await other_guest.open("/")
    try:
        second = await start(host, await issue(other_guest))
        async with (
            host.websocket(f"/ws/rooms/{first['room_id']}", V1) as noisy,
            host.websocket(f"/ws/rooms/{second['room_id']}", V1) as calm,
        ):
            await receive_type(noisy, "welcome")
            await receive_type(calm, "welcome")
            for frame in ("not json", '{"type": "nope"}', '{"type": "end", "extra": 1}', "[]", "x" * 70_000):
                await noisy.send(frame)
                error = await receive_type(noisy, "error")
                assert error["code"] == "bad_message" and error["message"]
            await noisy.send(b"\x00\x01")
            assert (await receive_type(noisy, "error"))["code"] == "bad_message"
            await calm.send('{"type": "ping"}')
            assert (await receive_type(calm, "pong"))["type"] == "pong"
            await noisy.send('{"type": "ping"}')
            assert (await receive_type(noisy, "pong"))["type"] == "pong"  # the noisy one is still served
    finally:
        await other_guest.aclose()


async def test_room_channel_refuses_other_origins_and_old_protocols(host: Browser, guest: Browser) -> None:
    room = await start(host, await issue(guest))
    path = f"/ws/rooms/{room['room_id']}"
    for kwargs in ({"subprotocols": None}, {"subprotocols": V1, "origin": "https://evil.example"}):
        with pytest.raises(Exception):  # noqa: B017 - websockets raises InvalidStatus or ConnectionClosed
            async with host.websocket(path, **kwargs) as ws:
                await receive(ws)


async def test_lobby_waits_and_the_guest_page_moves_on(host: Browser, guest: Browser) -> None:
    number = await issue(guest)
    async with guest.websocket("/ws/lobby") as lobby:
        with pytest.raises(asyncio.TimeoutError):
            await receive(lobby, within=0.3)
        room = await start(host, number)
        assert (await receive(lobby))["url"] == room["url"]


async def test_a_guest_who_left_and_issues_again_waits_for_the_new_room(
    host: Browser, guest: Browser
) -> None:
    first = await start(host, await issue(guest))
    path = f"/ws/rooms/{first['room_id']}"
    async with host.websocket(path, V1) as host_ws:
        await receive_type(host_ws, "welcome")
        guest_ws = await guest.websocket(path, V1)
        await receive_type(guest_ws, "welcome")
        await until(host_ws, "presence", role="guest", presence="connected")
        await guest_ws.send('{"type": "end"}')
        await until(host_ws, "presence", role="guest", presence="left")
        await guest_ws.close()
    number = await issue(guest)
    async with guest.websocket("/ws/lobby") as lobby:
        with pytest.raises(asyncio.TimeoutError):
            await receive(lobby, within=0.3)  # not sent back into the room it left
        second = await start(host, number)
        assert (await receive(lobby))["url"] == second["url"] != first["url"]
