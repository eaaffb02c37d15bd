"""共有メモ: the room's Yjs memo (sans-I/O), its durable log and reload, compaction, the final text in the
meeting record, the memo.txt download, templates and their limits, and convergence under random
interleavings, drops and reconnects (two pycrdt clients syncing through the server's memo)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text
from sqlalchemy import select
from starlette.applications import Starlette

from recordings.models import MeetingRecord, MemoUpdate
from signaling.hub import RoomHub
from signaling.memo import STEP1, STEP2, UPDATE, parse_sync_message, sync_message
from signaling.protocol import End, ErrorFrame, MemoAwareness, MemoSync, Ping, Pong, Role
from signaling.room import Close, MemoFinal, MemoUpdated, Room, Send, StateChanged
from signaling.rooms import DatabaseRoomStore, memo_text
from store.models import Role as UserRole
from tests.conftest import make_client
from tests.harness.live import LiveServer
from tests.helpers import csrf_token, open_room, seed_org, sign_in
from tests.joining import Browser
from web.meetings import find_document
from web.memos import memo_file
from web.services import services


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Client:
    """A participant's memo as a Yjs client would keep it (pycrdt instead of yjs)."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.doc["memo"] = self.text = Text()

    def step1(self) -> MemoSync:
        return MemoSync(type="memo.sync", data=b64(sync_message(STEP1, self.doc.get_state())))

    def edit(self, position: int, insert: str = "", delete: int = 0) -> MemoSync:
        """Edit at a character position (pycrdt 0.14 indexes Text by UTF-8 bytes, so convert)."""
        before = self.doc.get_state()
        current = str(self.text)
        position = min(position, len(current))
        start = len(current[:position].encode())
        end = len(current[: position + delete].encode())
        with self.doc.transaction():
            if end > start:
                del self.text[start:end]
            if insert:
                self.text.insert(start, insert)
        return MemoSync(type="memo.sync", data=b64(sync_message(UPDATE, self.doc.get_update(before))))

    def receive(self, data: str) -> MemoSync | None:
        """Apply a server memo.sync; a step 1 is answered with a step 2."""
        kind, payload = parse_sync_message(base64.b64decode(data))
        if kind == STEP1:
            return MemoSync(type="memo.sync", data=b64(sync_message(STEP2, self.doc.get_update(payload))))
        self.doc.apply_update(payload)
        return None


def memo_frames(effects: list[Any], to: str | None = None) -> list[str]:
    return [
        e.message.data
        for e in effects
        if isinstance(e, Send) and e.message.type == "memo.sync" and (to is None or e.to == to)
    ]


def active_room() -> Room:
    room = Room("r1", "1234567")
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=0)
    return room


# The room's memo, sans I/O


def test_step1_gets_the_servers_step2_and_step1() -> None:
    room = active_room()
    room.memo.insert(0, "議題")
    client = Client()
    effects = room.receive(Role.GUEST, "g1", client.step1(), now=1)
    replies = memo_frames(effects, to="g1")
    assert len(replies) == 2 and len(effects) == 2  # nothing stored, nothing for the other side
    assert [parse_sync_message(base64.b64decode(r))[0] for r in replies] == [STEP2, STEP1]
    answer = [client.receive(r) for r in replies]
    assert str(client.text) == "議題" and answer[1] is not None  # the client answers the server's step 1


def test_an_update_goes_to_the_other_side_and_is_stored_with_its_author() -> None:
    room = active_room()
    host = Client()
    effects = room.receive(Role.HOST, "h1", host.edit(0, "こんにちは"), now=5)
    forwarded = [e for e in effects if isinstance(e, Send)]
    assert len(forwarded) == 1 and forwarded[0].exclude == "h1" and forwarded[0].to is None
    stored = [e for e in effects if isinstance(e, MemoUpdated)]
    assert len(stored) == 1 and stored[0].author == Role.HOST and stored[0].at == 5
    assert room.memo.text() == "こんにちは"
    guest = Client()
    guest.receive(forwarded[0].message.data)  # type: ignore[union-attr]
    assert str(guest.text) == "こんにちは"


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        b64(b"\x02\x05abc"),  # length past the end
        b64(b"\x07\x00"),  # no such sync message
        b64(sync_message(UPDATE, b"\xff\xff\xff\xff")),  # not a Yjs update
        b64(sync_message(STEP1, b"\xff\xff")),  # not a state vector
        b64(sync_message(UPDATE, b"\x00\x00") + b"x"),  # trailing bytes
    ],
)
def test_bad_memo_data_gets_an_error_frame_and_the_room_goes_on(data: str) -> None:
    room = active_room()
    room.memo.insert(0, "keep")
    effects = room.receive(Role.GUEST, "g1", MemoSync(type="memo.sync", data=data), now=1)
    assert len(effects) == 1 and isinstance(effects[0], Send) and effects[0].to == "g1"
    assert isinstance(effects[0].message, ErrorFrame) and effects[0].message.code == "bad_message"
    assert room.memo.text() == "keep"
    assert room.receive(Role.GUEST, "g1", Ping(type="ping"), now=2) == [Send(Pong(), to="g1")]
    host = Client()
    room.receive(Role.HOST, "h1", host.step1(), now=3)
    assert room.memo.text() == "keep"


def test_awareness_is_relayed_to_the_other_side_only_and_not_stored() -> None:
    room = active_room()
    caret = b64(b'\x01\x07\x01\x0f{"role":"host"}')  # client 7, clock 1, its state
    effects = room.receive(Role.HOST, "h1", MemoAwareness(type="memo.awareness", data=caret), now=1)
    assert len(effects) == 1 and isinstance(effects[0], Send) and effects[0].exclude == "h1"
    bad = room.receive(Role.HOST, "h1", MemoAwareness(type="memo.awareness", data="%%%"), now=1)
    assert isinstance(bad[0], Send) and isinstance(bad[0].message, ErrorFrame)


def test_ending_the_room_hands_over_the_final_text_before_the_state() -> None:
    room = active_room()
    room.receive(Role.GUEST, "g1", Client().edit(0, "最終"), now=1)
    effects = room.receive(Role.HOST, "h1", End(type="end"), now=2)
    assert effects[0] == MemoFinal("最終") and isinstance(effects[1], StateChanged)
    assert any(isinstance(e, Close) for e in effects)


# Convergence: random edits, deliveries, drops and reconnects


class Network:
    """Two clients and the room, with queues in both directions; a drop loses whatever was in flight."""

    def __init__(self) -> None:
        self.room = Room("r", "0000000")
        self.clients = {Role.HOST: Client(), Role.GUEST: Client()}
        self.connection: dict[Role, str | None] = {Role.HOST: None, Role.GUEST: None}
        self.up: dict[Role, list[MemoSync]] = {Role.HOST: [], Role.GUEST: []}
        self.down: dict[Role, list[str]] = {Role.HOST: [], Role.GUEST: []}
        self.serial = 0
        for role in self.clients:
            self.reconnect(role)

    def reconnect(self, role: Role) -> None:
        if self.connection[role] is not None:
            return
        self.serial += 1
        self.connection[role] = f"{role}-{self.serial}"
        self.route(self.room.connect(role, f"{role}-{self.serial}", now=0))
        self.up[role].append(self.clients[role].step1())  # sent after the welcome

    def drop(self, role: Role) -> None:
        connection = self.connection[role]
        if connection is None:
            return
        self.route(self.room.disconnect(role, connection, now=0))
        self.connection[role] = None
        self.up[role].clear()
        self.down[role].clear()

    def route(self, effects: list[Any]) -> None:
        for effect in effects:
            if not isinstance(effect, Send) or effect.message.type != "memo.sync":
                continue
            for role, connection in self.connection.items():
                if connection is None or effect.exclude == connection:
                    continue
                if effect.to in (None, connection):
                    self.down[role].append(effect.message.data)

    def edit(self, role: Role, position: int, insert: str, delete: int) -> None:
        message = self.clients[role].edit(position, insert, delete)
        if self.connection[role] is not None:
            self.up[role].append(message)

    def deliver_up(self, role: Role) -> None:
        connection = self.connection[role]
        if connection is not None and self.up[role]:
            self.route(self.room.receive(role, connection, self.up[role].pop(0), now=0))

    def deliver_down(self, role: Role) -> None:
        if self.connection[role] is not None and self.down[role]:
            answer = self.clients[role].receive(self.down[role].pop(0))
            if answer is not None:
                self.up[role].append(answer)

    def settle(self) -> None:
        for role in self.clients:
            self.reconnect(role)
        for _ in range(1000):
            if not any(self.up.values()) and not any(self.down.values()):
                return
            for role in self.clients:
                self.deliver_up(role)
                self.deliver_down(role)
        raise AssertionError("did not settle")


roles = st.sampled_from([Role.HOST, Role.GUEST])
steps = st.one_of(
    st.tuples(
        st.just("edit"), roles, st.integers(0, 30), st.text("あいうabc\n", max_size=4), st.integers(0, 3)
    ),
    st.tuples(st.sampled_from(["up", "down", "up", "down", "drop", "reconnect"]), roles),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=60))
def test_two_clients_converge_whatever_the_interleaving_drops_and_reconnects(
    plan: list[tuple[Any, ...]],
) -> None:
    network = Network()
    for step in plan:
        match step:
            case ("edit", role, position, insert, delete):
                network.edit(role, position, insert, delete)
            case ("up", role):
                network.deliver_up(role)
            case ("down", role):
                network.deliver_down(role)
            case ("drop", role):
                network.drop(role)
            case ("reconnect", role):
                network.reconnect(role)
    network.settle()
    texts = {str(client.text) for client in network.clients.values()}
    assert texts == {network.room.memo.text()}


# Stored, reloaded, compacted, kept in the meeting record


@pytest.fixture
async def stored_room(app: Starlette) -> AsyncIterator[tuple[str, str]]:
    yield await open_room(app, await seed_org(app, "acme", {"host@acme.example": UserRole.HOST}))


async def next_memo(participant: Any, within: float = 5.0) -> str:
    iterator = participant.outgoing().__aiter__()
    for _ in range(20):
        item = await asyncio.wait_for(iterator.__anext__(), within)
        if item.message and item.message["type"] == "memo.sync":
            return str(item.message["data"])
    raise AssertionError("no memo.sync frame")


async def rows(app: Starlette, room_id: str) -> list[MemoUpdate]:
    async with services(app).sessions() as db:
        return list(await db.scalars(select(MemoUpdate).where(MemoUpdate.room_id == room_id)))


async def test_updates_are_stored_and_a_reopened_room_has_the_memo(
    app: Starlette, stored_room: tuple[str, str]
) -> None:
    room_id, connect_id = stored_room
    hub: RoomHub = services(app).hub
    client = Client()
    async with hub.participate(room_id, Role.HOST) as host:
        await host.send(client.edit(0, "見積もり\n"))
        await host.send(client.edit(5, "来週"))
        await hub.settle(room_id)  # the home has handled both, and the writer stored them
    stored = await rows(app, room_id)
    assert [row.author for row in stored] == ["host", "host"]
    # A restarted node: a new hub over the same database reopens the room from its log.
    restarted = RoomHub(services(app).broker, DatabaseRoomStore(services(app).sessions, find_document))
    try:
        await hub.aclose()
        await restarted.open(room_id, connect_id)
        assert restarted.room(room_id).memo.text() == "見積もり\n来週"  # type: ignore[union-attr]
        async with restarted.participate(room_id, Role.GUEST) as guest:
            other = Client()
            await guest.send(other.step1())
            other.receive(await next_memo(guest))
            assert str(other.text) == "見積もり\n来週"
    finally:
        await restarted.aclose()
    async with services(app).sessions() as db:
        assert await memo_text(db, room_id) == "見積もり\n来週"


async def test_compaction_keeps_the_text_and_ending_keeps_it_in_the_record(
    app: Starlette, stored_room: tuple[str, str]
) -> None:
    room_id, connect_id = stored_room
    hub: RoomHub = services(app).hub
    hub.writer.memo_compact_rows = 5
    client = Client()
    async with hub.participate(room_id, Role.HOST) as host:
        for i in range(23):
            await host.send(client.edit(i, "あ"))
        await hub.settle(room_id)
        assert len(await rows(app, room_id)) <= 6
        async with services(app).sessions() as db:
            assert await memo_text(db, room_id) == "あ" * 23
        await host.send(client.edit(0, "先頭"))
        await host.send(End(type="end"))
        await hub.settle(room_id)  # the room ended: its final text and its end are stored
        async with services(app).sessions() as db:
            record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
    assert record is not None and record.ended_at is not None and record.memo == "先頭" + "あ" * 23


async def test_rooms_that_fill_up_together_are_compacted_one_per_batch(app: Starlette) -> None:
    seeded = await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    hub: RoomHub = services(app).hub
    hub.writer.memo_compact_rows = 5
    room_ids = [(await open_room(app, seeded))[0] for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(hub.participate(room_id, Role.HOST)) for room_id in room_ids]
        clients = [Client() for _ in hosts]
        for i in range(8):  # past the threshold in all three rooms, in the same batches
            for host, client in zip(hosts, clients, strict=True):
                await host.send(client.edit(i, "い"))
        for room_id in room_ids:
            await hub.settle(room_id)
        counts = [len(await rows(app, room_id)) for room_id in room_ids]
        assert sorted(counts)[0] <= 2 and sorted(counts)[-1] == 8, (
            counts
        )  # one merged so far, not all at once
        for i in range(3):  # later batches take the rooms still due, one each
            for host, client in zip(hosts, clients, strict=True):
                await host.send(client.edit(8 + i, "う"))
            for room_id in room_ids:
                await hub.settle(room_id)
        for room_id in room_ids:
            assert len(await rows(app, room_id)) <= 5
            async with services(app).sessions() as db:
                assert await memo_text(db, room_id) == "い" * 8 + "う" * 3


# メモを渡す


def test_memo_file_is_utf8_with_a_bom_and_crlf() -> None:
    data = memo_file("一行目\n二行目\r\n三行目")
    assert data.startswith(b"\xef\xbb\xbf")
    assert data[3:].decode("utf-8") == "一行目\r\n二行目\r\n三行目"


async def test_memo_txt_is_for_the_rooms_participants_only(live_server: LiveServer) -> None:
    live_server.call(
        seed_org(
            live_server.app, "acme", {"host@acme.example": UserRole.HOST, "other@acme.example": UserRole.HOST}
        )
    )
    host, guest, other, stranger = (Browser(live_server.url) for _ in range(4))
    try:
        await host.sign_in("host@acme.example")
        await other.sign_in("other@acme.example")
        await guest.open("/")
        number = (await guest.post_json("/api/numbers")).json()["number"]
        room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]

        async def write() -> None:
            room = services(live_server.app).hub.room(room_id)
            assert room is not None
            room.memo.insert(0, "ご要望\n見積もり")

        live_server.call(write())
        for browser in (host, guest):
            response = await browser.http.get(f"/rooms/{room_id}/memo.txt")
            assert response.status_code == 200
            assert response.content == "\ufeffご要望\r\n見積もり".encode()
            assert "attachment" in response.headers["content-disposition"]
            assert "filename*=UTF-8''" in response.headers["content-disposition"]
        for browser in (other, stranger):
            assert (await browser.http.get(f"/rooms/{room_id}/memo.txt")).status_code == 404
    finally:
        for browser in (host, guest, other, stranger):
            await browser.aclose()


# Templates


async def add(client: httpx.AsyncClient, title: str, shared: bool = False) -> httpx.Response:
    token = await csrf_token(client, "/memo-templates")
    data = {"title": title, "body": f"{title}の本文\n- 項目", "csrf_token": token}
    if shared:
        data["shared"] = "1"
    return await client.post("/memo-templates", data=data)


async def test_template_limits_and_org_scoping(app: Starlette) -> None:
    await seed_org(app, "acme", {"admin@acme.example": UserRole.ADMIN, "host@acme.example": UserRole.HOST})
    await seed_org(app, "other", {"host@other.example": UserRole.HOST})
    async with make_client(app) as admin, make_client(app) as host, make_client(app) as foreign:
        await sign_in(admin, "admin@acme.example")
        await sign_in(host, "host@acme.example")
        await sign_in(foreign, "host@other.example")
        for i in range(10):
            assert (await add(host, f"個人{i}")).status_code == 303
        refused = await add(host, "11個目")
        assert refused.status_code == 409 and "10" in refused.text
        for i in range(3):
            assert (await add(admin, f"共有{i}", shared=True)).status_code == 303
        refused = await add(admin, "共有4", shared=True)
        assert refused.status_code == 409 and "3" in refused.text
        assert (await add(host, "共有したい", shared=True)).status_code == 404  # only admins share

        listed = (await host.get("/api/memo-templates")).json()["templates"]
        assert len(listed) == 13 and sum(t["shared"] for t in listed) == 3
        assert (await foreign.get("/api/memo-templates")).json()["templates"] == []
        shared_id = next(t["id"] for t in listed if t["shared"])
        own_id = next(t["id"] for t in listed if not t["shared"])
        token = await csrf_token(foreign, "/memo-templates")
        deleted = await foreign.post(f"/memo-templates/{own_id}/delete", data={"csrf_token": token})
        assert deleted.status_code == 404
        token = await csrf_token(host, "/memo-templates")
        assert (
            await host.post(f"/memo-templates/{shared_id}/delete", data={"csrf_token": token})
        ).status_code == 404
        assert (
            await host.post(f"/memo-templates/{own_id}/delete", data={"csrf_token": token})
        ).status_code == 303
        assert len((await host.get("/api/memo-templates")).json()["templates"]) == 12
        assert (await add(host, "また追加")).status_code == 303
        page = await host.get("/memo-templates")
        assert page.status_code == 200 and "共有0" in page.text
