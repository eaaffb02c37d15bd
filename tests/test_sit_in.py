"""同席: a manager watching a live meeting read-only. The room's rules without sockets, then the whole server
over real WebSockets and HTTP: who may, what the participants are told, the manager's socket refusing every
frame, the record of who sat in, and video for the watcher through the relay (aiortc stand-ins)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from recordings.models import SitIn
from signaling.memo import (
    STEP2,
    UPDATE,
    SharedMemo,
    decode,
    encode,
    parse_sync_message,
    sync_message,
    text_of,
)
from signaling.protocol import (
    SUBPROTOCOL,
    CloseCode,
    DocumentInfo,
    DocumentState,
    End,
    MediaState,
    MemoSyncOut,
    OpenDocument,
    PeerMedia,
    Role,
    SitInChanged,
    SitInWelcome,
)
from signaling.room import Close, Room, RoomError, Send
from signaling.sit_in import OBSERVED, StopWatching, Watch
from store.models import Org
from store.models import Role as UserRole
from tests.harness.live import LiveServer
from tests.harness.media import Client, wait_for
from tests.helpers import seed_org, sent
from tests.joining import Browser, receive, receive_type, until
from web.services import services

# The room's rules


def active_room() -> Room:
    room = Room("r1", "1234567")
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=1)
    return room


def test_a_watcher_gets_what_both_sides_see_and_the_participants_are_told() -> None:
    room = active_room()
    room.receive(Role.GUEST, "g1", MediaState(type="media.state", camera="on", screen=False, audio=False), 2)
    room.memo.insert(0, "お見積もりの件")
    effects = room.observe("m1", user_id=7, announce=True, now=3)
    welcome = sent(effects, SitInWelcome)[0]
    assert welcome.to == "m1" and welcome.message.connection == "m1"
    assert welcome.message.room.connect_id == "1234567" and welcome.message.peers.guest == "connected"
    assert sent(effects, DocumentState)[0].to == "m1"
    memo = sent(effects, MemoSyncOut)[0]
    kind, payload = parse_sync_message(decode(memo.message.data))
    assert memo.to == "m1" and text_of([payload]) == "お見積もりの件"  # the whole memo at once
    assert [(p.to, p.message.role) for p in sent(effects, PeerMedia)] == [("m1", Role.GUEST)]
    told = sent(effects, SitInChanged)
    assert sorted((s.to, s.message.present) for s in told) == [("g1", True), ("h1", True)]  # not to m1
    # A second watcher changes nothing for the participants.
    assert not sent(room.observe("m2", user_id=8, announce=True, now=4), SitInChanged)
    # What a side sends reaches the watchers too; a reconnecting participant is told again.
    state = MediaState(type="media.state", camera="off", screen=True, audio=False)
    change = room.receive(Role.HOST, "h1", state, 5)
    assert {p.to for p in sent(change, PeerMedia)} == {"g1", "m1", "m2"}
    again = room.connect(Role.GUEST, "g2", now=6)
    assert [(s.to, s.message.present) for s in sent(again, SitInChanged)] == [("g2", True)]
    # The last one leaving turns the notice off.
    assert room.unobserve("m1") == [StopWatching("m1")]
    left = room.unobserve("m2")
    assert StopWatching("m2") in left
    told = sent(left, SitInChanged)
    assert sorted((s.to, s.message.present) for s in told) == [("g2", False), ("h1", False)]
    assert room.unobserve("m2") == []


def test_when_the_org_does_not_show_it_the_participants_are_not_told() -> None:
    room = active_room()
    assert not sent(room.observe("m1", user_id=7, announce=False, now=2), SitInChanged)
    assert not sent(room.connect(Role.HOST, "h2", now=3), SitInChanged)
    assert not sent(room.unobserve("m1"), SitInChanged)


def test_media_offers_only_from_the_watchers_own_connection_and_the_end_closes_it() -> None:
    room = active_room()
    room.observe("m1", user_id=7, announce=True, now=2)
    assert room.observer_offer("m1", 7, "v=0") == [Watch("m1", "v=0")]
    assert room.observer_offer("m1", 8, "v=0") == []  # another manager naming this connection
    assert room.observer_offer("h1", 7, "v=0") == []  # a participant's connection is no watcher
    ended = room.receive(Role.HOST, "h1", End(type="end"), 3)
    assert Close("m1", CloseCode.ROOM_ENDED) in ended
    assert not room.sit_in.observers
    with pytest.raises(RoomError):
        room.observe("m2", user_id=7, announce=True, now=4)


def test_document_changes_are_broadcast_so_watchers_follow() -> None:
    room = active_room()
    room.observe("m1", user_id=7, announce=True, now=2)
    info = DocumentInfo(id=3, name="会社案内.pdf", kind="slides", pages=5)
    room.receive(Role.HOST, "h1", OpenDocument(type="doc.open", document_id=3), 3)
    effects = room.document_found(info, "h1", 3)
    assert [s for s in effects if isinstance(s, Send) and isinstance(s.message, DocumentState)][0].to is None


# The whole server


@pytest.fixture
async def call(live_server: LiveServer) -> AsyncIterator[tuple[str, Browser, Browser, Browser]]:
    """A live room of org "acme" (host and guest signed in / joined) and a manager of the org."""
    people = {"host@acme.example": UserRole.HOST, "boss@acme.example": UserRole.MANAGER}
    live_server.call(seed_org(live_server.app, "acme", people))
    live_server.call(seed_org(live_server.app, "other", {"admin@other.example": UserRole.ADMIN}))
    host, guest, boss = Browser(live_server.url), Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    await boss.sign_in("boss@acme.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    try:
        yield room_id, host, guest, boss
    finally:
        for browser in (host, guest, boss):
            await browser.aclose()


def channel(browser: Browser, room_id: str) -> Any:
    return browser.websocket(f"/ws/rooms/{room_id}", subprotocols=[SUBPROTOCOL])


def sit_in(browser: Browser, room_id: str) -> Any:
    return browser.websocket(f"/ws/sit-in/{room_id}", subprotocols=[SUBPROTOCOL])


async def closed_with(ws: Any, within: float = 5.0) -> int:
    """Read (bounded) until the server closes; the close code."""
    try:
        for _ in range(100):
            await asyncio.wait_for(ws.recv(), within)
    except ConnectionClosed as closed:
        return int(closed.rcvd.code) if closed.rcvd else -1
    raise AssertionError("the socket stayed open")


async def test_a_manager_sits_in_the_participants_see_it_and_its_frames_are_refused(
    live_server: LiveServer, call: tuple[str, Browser, Browser, Browser]
) -> None:
    room_id, host, guest, boss = call
    async with channel(host, room_id) as host_ws, channel(guest, room_id) as guest_ws:
        await receive_type(host_ws, "welcome")
        await receive_type(guest_ws, "welcome")
        async with sit_in(boss, room_id) as watch_ws:
            welcome = await receive_type(watch_ws, "sit_in.welcome")
            assert welcome["room"]["id"] == room_id and welcome["peers"]["guest"] == "connected"
            await until(host_ws, "sit_in", present=True)
            await until(guest_ws, "sit_in", present=True)
            # The memo as it is typed reaches the watcher.
            typed = SharedMemo().insert(0, "お見積もり")
            await host_ws.send(json.dumps({"type": "memo.sync", "data": encode(sync_message(UPDATE, typed))}))
            first = parse_sync_message(decode((await receive_type(watch_ws, "memo.sync"))["data"]))
            assert first[0] == STEP2 and text_of([first[1]]) == ""  # the memo as it was on joining
            kind, payload = parse_sync_message(decode((await receive_type(watch_ws, "memo.sync"))["data"]))
            assert kind == UPDATE and text_of([payload]) == "お見積もり"
            # Any frame from the manager's page: refused, its socket closed, nothing reaches the room.
            await watch_ws.send(json.dumps({"type": "end"}))
            refusal = await receive_type(watch_ws, "error")
            assert refusal["code"] == "read_only" and "同席" in refusal["message"]
            assert await closed_with(watch_ws) == CloseCode.READ_ONLY
        await until(host_ws, "sit_in", present=False)
        # The room went on: the host is still in an active meeting.
        await host_ws.send(json.dumps({"type": "ping"}))
        await receive_type(host_ws, "pong")
        assert services(live_server.app).hub.room(room_id).state == "active"  # type: ignore[union-attr]

    async def sat_in() -> list[SitIn]:
        async with services(live_server.app).sessions() as db:
            return list(await db.scalars(select(SitIn)))

    rows = live_server.call(sat_in())
    assert len(rows) == 1 and rows[0].user_name == "boss" and rows[0].announced
    assert rows[0].ended_at is not None and rows[0].ended_at >= rows[0].started_at


async def test_who_may_sit_in(live_server: LiveServer, call: tuple[str, Browser, Browser, Browser]) -> None:
    room_id, host, guest, boss = call
    other = Browser(live_server.url)
    try:
        await other.sign_in("admin@other.example")
        for stranger in (host, guest, other):  # the room's own host and guest are no managers
            async with sit_in(stranger, room_id) as ws:
                assert await closed_with(ws) == CloseCode.ROOM_NOT_FOUND
        assert (await host.open("/live")).status_code == 403
        assert (await other.open(f"/live/{room_id}")).status_code == 404
        assert (await boss.open(f"/live/{room_id}")).status_code == 200
        assert room_id not in (await boss.open("/live")).text  # waiting: nobody has joined yet
        async with channel(host, room_id) as host_ws, channel(guest, room_id) as guest_ws:
            await receive_type(host_ws, "welcome")
            await receive_type(guest_ws, "welcome")
            assert room_id in (await boss.open("/live")).text  # 商談中
            assert room_id not in (await other.open("/live")).text
        offer = {"connection": "x", "sdp": "v=0"}
        assert (await other.post_json(f"/api/sit-in/{room_id}/offer", offer)).status_code == 404
        assert (await boss.post_json(f"/api/sit-in/{room_id}/offer", {"sdp": ""})).status_code == 400
    finally:
        await other.aclose()


async def test_the_org_setting_hides_the_notice(
    live_server: LiveServer, call: tuple[str, Browser, Browser, Browser]
) -> None:
    room_id, host, guest, boss = call

    async def hide() -> None:
        async with services(live_server.app).sessions.begin() as db:
            org = await db.scalar(select(Org).where(Org.slug == "acme"))
            assert org is not None
            org.show_sit_in = False

    live_server.call(hide())
    async with channel(host, room_id) as host_ws:
        await receive_type(host_ws, "welcome")
        async with sit_in(boss, room_id) as watch_ws:
            await receive_type(watch_ws, "sit_in.welcome")
            # A notice would have been sent when the watcher joined, before the answer to this ping.
            await host_ws.send(json.dumps({"type": "ping"}))
            kinds: list[str] = []
            while not kinds or kinds[-1] != "pong":
                kinds.append((await receive(host_ws))["type"])
                assert len(kinds) < 50
            assert "sit_in" not in kinds


async def test_the_watcher_gets_the_guests_video_through_the_relay(
    live_server: LiveServer, call: tuple[str, Browser, Browser, Browser]
) -> None:
    room_id, host, guest, boss = call
    host_client, guest_client = Client(size=(160, 120)), Client(size=(128, 96))
    watcher = Client(camera=False, kinds=("video",) * len(OBSERVED))
    try:
        async with channel(host, room_id) as host_ws, channel(guest, room_id) as guest_ws:
            for ws, client in ((host_ws, host_client), (guest_ws, guest_client)):
                await receive_type(ws, "welcome")
                offer = {"type": "media.offer", "sdp": await client.offer(), "restart": False}
                await ws.send(json.dumps(offer))
                await client.accept((await receive_type(ws, "media.answer", within=10))["sdp"])
            async with sit_in(boss, room_id) as watch_ws:
                connection = (await receive_type(watch_ws, "sit_in.welcome"))["connection"]
                offer = {"connection": connection, "sdp": await watcher.offer()}
                assert (await boss.post_json(f"/api/sit-in/{room_id}/offer", offer)).status_code == 202
                await watcher.accept((await receive_type(watch_ws, "media.answer", within=10))["sdp"])
                await wait_for(lambda: watcher.frames[0] >= 10 and watcher.frames[1] >= 10, within=10)
                assert watcher.sizes[:2] == [(160, 120), (128, 96)]  # host camera, guest camera
    finally:
        for client in (host_client, guest_client, watcher):
            await client.close()
