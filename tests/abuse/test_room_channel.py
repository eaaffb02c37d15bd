"""The room channel under a worst client (findings 4 and 10): binary frames, floods, and a memo grown
without end. Real sockets against the live server; the rate limit's time moves on the manual clock."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from core.clock import ManualClock
from signaling.memo import UPDATE, encode, sync_message
from signaling.protocol import SUBPROTOCOL, CloseCode
from store.models import Role
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import Browser, receive, receive_type
from web.services import services
from web.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, room_messages_per_second=10, room_message_burst=20, memo_max_characters=1000)


@dataclass
class Call:
    server: LiveServer
    host: Browser
    guest: Browser
    room_id: str

    @property
    def path(self) -> str:
        return f"/ws/rooms/{self.room_id}"


@pytest.fixture
async def call(live_server: LiveServer) -> AsyncIterator[Call]:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    yield Call(live_server, host, guest, room_id)
    await host.aclose()
    await guest.aclose()


async def answers(ws: ClientConnection, count: int) -> Counter[str]:
    """The next ``count`` answers to pings, counted: "pong", or an error frame's code. (Refusals come from
    the socket's edge, pongs from the room: they may arrive in either order.)"""
    found: list[str] = []
    while len(found) < count:
        frame = await receive(ws)
        if frame["type"] in ("pong", "error"):
            found.append(frame.get("code", "pong"))
    return Counter(found)


async def test_binary_frames_are_refused_as_the_protocol_says(call: Call) -> None:
    """Finding 10: docs/protocol.md says text frames only, yet a binary frame holding JSON was obeyed."""
    async with call.host.websocket(call.path, [SUBPROTOCOL]) as ws:
        await receive_type(ws, "welcome")
        await ws.send(b'{"type": "ping"}')
        error = await receive_type(ws, "error")
        assert error["code"] == "bad_message" and error["message"] == "メッセージを処理できませんでした。"
        await ws.send('{"type": "ping"}')
        assert await answers(ws, 1) == {"pong": 1}


async def test_a_flooding_connection_is_limited_then_closed_and_nobody_else_notices(
    call: Call, clock: ManualClock
) -> None:
    """Finding 4: no per-connection message rate. 10 a second with a burst of 20 here."""
    async with (
        call.host.websocket(call.path, [SUBPROTOCOL]) as noisy,
        call.guest.websocket(call.path, [SUBPROTOCOL]) as calm,
    ):
        await receive_type(noisy, "welcome")
        await receive_type(calm, "welcome")
        for _ in range(30):
            await noisy.send('{"type": "ping"}')
        got = await answers(noisy, 30)
        assert got == {"pong": 20, "rate_limited": 10}
        clock.advance(0.5)  # five tokens back
        for _ in range(6):
            await noisy.send('{"type": "ping"}')
        assert await answers(noisy, 6) == {"pong": 5, "rate_limited": 1}
        await calm.send('{"type": "ping"}')
        assert await answers(calm, 1) == {"pong": 1}  # the other participant is served as ever
        for _ in range(9):  # 10 + 1 + 9 refused frames: the connection is closed
            await noisy.send('{"type": "ping"}')
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(20):
                await receive(noisy)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.POLICY_VIOLATION
        await calm.send('{"type": "ping"}')
        assert await answers(calm, 1) == {"pong": 1}


def insertion(text: str) -> str:
    """A memo.sync frame from a fresh client inserting ``text`` at the start of the memo."""
    doc: Doc[Text] = Doc()
    doc["memo"] = memo = Text()
    memo.insert(0, text)
    return json.dumps({"type": "memo.sync", "data": encode(sync_message(UPDATE, doc.get_update()))})


async def test_the_memo_stops_at_its_length_cap(call: Call) -> None:
    """Finding 4: one guest grew the shared memo to 42 MB. 1,000 characters here."""
    async with (
        call.guest.websocket(call.path, [SUBPROTOCOL]) as guest_ws,
        call.host.websocket(call.path, [SUBPROTOCOL]) as host_ws,
    ):
        await receive_type(guest_ws, "welcome")
        await receive_type(host_ws, "welcome")
        await guest_ws.send(insertion("あ" * 1500))
        full = await receive_type(guest_ws, "error")
        assert full["code"] == "memo_full" and "共有メモがいっぱい" in full["message"]
        await guest_ws.send(insertion("い" * 900))
        assert (await receive_type(host_ws, "memo.sync"))["data"]  # within the cap: passed on
        await guest_ws.send(insertion("う" * 200))
        assert (await receive_type(guest_ws, "error"))["code"] == "memo_full"
        await guest_ws.send(insertion("え" * 100))  # exactly 1,000 characters in all
        await receive_type(host_ws, "memo.sync")
        room = services(call.server.app).hub.room(call.room_id)
        # Both were inserted at the start by different clients: Yjs orders them by client id.
        assert room is not None and sorted(room.memo.text()) == sorted("え" * 100 + "い" * 900)
        await guest_ws.send('{"type": "ping"}')
        assert (await receive_type(guest_ws, "pong"))["type"] == "pong"
