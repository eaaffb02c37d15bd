"""A database that fails for a while (SQLite's "database is locked") does not end a meeting or lose what
was typed: the room's writes are retried in order, a document that cannot be looked up gets an error frame,
and everything is stored once the database answers again.

The faults are real errors from the real store: an engine event makes the app's own SQLite connection
refuse matching statements with ``sqlite3.OperationalError("database is locked")`` a given number of times.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from documents.models import Document, DocumentKind, DocumentStatus
from recordings.models import MeetingRecord, MemoUpdate
from recordings.records import page_views
from signaling import writer as writer_module
from signaling.connections import Outgoing, Participant
from signaling.hub import RoomHub
from signaling.models import RoomRow, RoomState
from signaling.protocol import SUBPROTOCOL, CloseCode, End, OpenDocument, Role, TurnPage
from signaling.room import LOOKUP_FAILED
from signaling.writer import MemoRow, RoomWriter
from store.db import StoreUnavailable
from store.models import Role as UserRole
from tests.harness.live import LiveServer
from tests.helpers import Seeded, open_room, seed_org
from tests.joining import Browser, receive, receive_type
from tests.test_memo import Client
from web.services import services


class LockedDatabase:
    """Refuses the next ``times`` statements containing ``words`` as a locked SQLite database does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.left: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        event.listen(engine, "before_cursor_execute", self._before)

    def refuse(self, words: str, times: int) -> None:
        self.left[words] = times

    def _before(self, *args: Any) -> None:
        statement = str(args[2]).lower()
        for words, left in self.left.items():
            if left and words in statement:
                self.left[words] = left - 1
                self.refused[words] = self.refused.get(words, 0) + 1
                raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)


@pytest.fixture
def locked(app: Starlette) -> Iterator[LockedDatabase]:
    faults = LockedDatabase(services(app).engine.sync_engine)
    services(app).hub.writer.retry_first_delay = 0.01  # the back-off, shortened: the faults are few
    yield faults
    faults.close()


@pytest.fixture
async def seeded(app: Starlette) -> Seeded:
    return await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})


async def add_document(app: Starlette, seeded: Seeded) -> int:
    async with services(app).sessions.begin() as db:
        document = Document(
            org_id=seeded.org_id,
            owner_id=seeded.users["host@acme.example"],
            name="会社案内.pdf",
            kind=DocumentKind.SLIDES,
            status=DocumentStatus.READY,
            pages=5,
            rendered=5,
        )
        db.add(document)
        await db.flush()
        return document.id


async def frame(
    participant: Participant, iterator: AsyncIterator[Outgoing], kind: str, **fields: Any
) -> dict[str, Any]:
    """The next frame of ``kind`` (with these top-level fields) for ``participant`` (bounded: 50 frames)."""
    for _ in range(50):
        item = await asyncio.wait_for(iterator.__anext__(), 5.0)
        assert item.close is None, f"closed with {item.close!r} while waiting for {kind}"
        if item.message is not None and item.message["type"] == kind:
            if all(item.message.get(key) == value for key, value in fields.items()):
                return item.message
    raise AssertionError(f"no {kind} frame")


async def test_a_locked_database_neither_ends_the_meeting_nor_loses_the_memo(
    app: Starlette, seeded: Seeded, locked: LockedDatabase
) -> None:
    hub: RoomHub = services(app).hub
    document_id = await add_document(app, seeded)
    room_id, _connect_id = await open_room(app, seeded)
    typed = Client()
    locked.refuse("update rooms", 3)  # the room becoming active
    locked.refuse("insert into memo_updates", 4)
    async with hub.participate(room_id, Role.HOST) as host, hub.participate(room_id, Role.GUEST) as guest:
        host_frames, guest_frames = host.outgoing().__aiter__(), guest.outgoing().__aiter__()
        await frame(guest, guest_frames, "welcome")
        for i, piece in enumerate(["見積", "もり", "来週"]):
            await host.send(typed.edit(2 * i, piece))
        await hub.settle(room_id)  # returns only once the retried writes are stored
        assert locked.refused == {"update rooms": 3, "insert into memo_updates": 4}
        async with services(app).sessions() as db:
            assert (await db.get(RoomRow, room_id)).state == RoomState.ACTIVE  # type: ignore[union-attr]
            rows = list(await db.scalars(select(MemoUpdate).where(MemoUpdate.room_id == room_id)))
        assert len(rows) == 3 and [row.author for row in rows] == ["host"] * 3

        # The library cannot be read: the host is told, and the room goes on.
        locked.refuse("from documents", 1)
        await host.send(OpenDocument(type="doc.open", document_id=document_id))
        error = await frame(host, host_frames, "error")
        assert error["code"] == "unavailable" and error["message"] == LOOKUP_FAILED
        await host.send(OpenDocument(type="doc.open", document_id=document_id))  # tried again: it opens
        locked.refuse("insert into page_views", 2)
        opened = await frame(guest, guest_frames, "doc.state", page=1)
        while opened["document"] is None:  # the state sent with the welcome comes first
            opened = await frame(guest, guest_frames, "doc.state", page=1)
        assert opened["document"]["id"] == document_id
        await host.send(TurnPage(type="doc.page", page=2))
        assert (await frame(guest, guest_frames, "doc.state", page=2))["document"]["id"] == document_id

        locked.refuse("update meeting_records", 2)  # the end of the record, and the memo's final text
        await host.send(End(type="end"))
        assert (await frame(guest, guest_frames, "ended"))["by"] == "host"  # not "timeout"
    await hub.flush()
    async with services(app).sessions() as db:
        room = await db.get(RoomRow, room_id)
        record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
        views = await page_views(db, room_id)
    assert room is not None and room.state == RoomState.ENDED
    assert record is not None and record.ended_at is not None and record.memo == "見積もり来週"
    assert [(view.document_id, view.page) for view in views] == [(document_id, 1), (document_id, 2)]
    assert locked.left == {words: 0 for words in locked.left}  # every fault was met, and outlasted


class Flaky:
    """A store whose writes fail a given number of times (``fail``) before they work."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.stored: list[str] = []

    async def write(self, name: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.stored.append(name)

    async def memo_updated(self, updates: list[Any]) -> None:
        await self.write("memo")

    async def compact_memo(self, room_id: str) -> None:
        pass


async def test_the_writer_retries_in_order_and_acknowledges_only_what_is_stored() -> None:
    store = Flaky([StoreUnavailable()] * 4)
    writer = RoomWriter(store)
    writer.retry_first_delay = 0.001
    try:
        await writer.put(("r1", lambda: store.write("first")))
        assert await writer.stored(("r1", lambda: store.write("second"))) is True
        assert store.stored == ["first", "second"] and writer.retries == 4  # nothing overtook the first

        # A write that cannot succeed (not a transient error) is given up after a few tries, and says so.
        store.failures = [ValueError("constraint")] * 3
        assert await writer.stored(("r1", lambda: store.write("bad"))) is False
        assert await writer.stored(("r1", lambda: store.write("after"))) is True
        assert store.stored == ["first", "second", "after"]
    finally:
        await writer.aclose()


async def test_memo_rows_wait_for_their_batch_but_nothing_else_waits_behind_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keystrokes are gathered for ``MEMO_BATCH_SECONDS`` into one transaction; a room's other writes (its
    state, a page view, a sit-in's end) queued behind them, or a flush, end that wait at once."""
    monkeypatch.setattr(writer_module, "MEMO_BATCH_SECONDS", 60.0)  # far longer than any wait below
    store = Flaky([])
    writer = RoomWriter(store)
    try:
        writer.offer(MemoRow("r1", b"\x00", "host", 0.0))
        for _ in range(20):
            await asyncio.sleep(0)
        assert store.stored == []  # gathered, not written yet
        # Another write behind it is stored within moments, with the rows before it, in order.
        assert await asyncio.wait_for(writer.stored(("r1", lambda: store.write("state"))), 5.0) is True
        assert store.stored == ["memo", "state"]
        writer.offer(MemoRow("r1", b"\x01", "host", 1.0))
        await asyncio.wait_for(writer.flush(), 5.0)  # a flush does not wait for the batch either
        assert store.stored == ["memo", "state", "memo"]
    finally:
        await writer.aclose()


class RowsKept(Flaky):
    """A store that keeps which rows each memo transaction had."""

    def __init__(self) -> None:
        super().__init__([])

    async def memo_updated(self, updates: list[Any]) -> None:
        await self.write("memo:" + "".join(row.update.hex() for row in updates))


async def test_offered_rows_are_queued_together_and_keep_their_place_among_other_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows offered one after another join one list in the queue (no queue operation per keystroke), but
    a write queued between them is stored between them, and rows offered while the writer gathers go into
    the same transaction."""
    monkeypatch.setattr(writer_module, "MEMO_BATCH_SECONDS", 60.0)
    monkeypatch.setattr(writer_module, "QUEUE_SIZE", 10)
    store = RowsKept()
    writer = RoomWriter(store)
    try:
        for i in range(3):
            writer.offer(MemoRow("r1", bytes([i]), "host", float(i)))
        await writer.put(("r1", lambda: store.write("state")))
        for i in range(3, 5):
            writer.offer(MemoRow("r1", bytes([i]), "guest", float(i)))
        assert writer.pending == 3  # two lists of rows and the write between them
        await asyncio.wait_for(writer.flush(), 5.0)
        assert store.stored == ["memo:000102", "state", "memo:0304"]

        writer.offer(MemoRow("r1", b"\x05", "host", 5.0))
        for _ in range(20):
            await asyncio.sleep(0)  # the writer has taken the list and waits for more
        for i in range(6, 15):
            writer.offer(MemoRow("r1", bytes([i]), "host", float(i)))
        assert not writer.has_room()  # ten rows wait: the fast path stops offering (backpressure)
        await asyncio.wait_for(writer.flush(), 5.0)
        assert store.stored[3:] == ["memo:05060708090a0b0c0d0e"]  # one transaction
        assert writer.has_room()
    finally:
        await writer.aclose()


async def test_joining_while_the_database_is_locked_gets_4503_and_the_next_try_gets_in(
    live_server: LiveServer,
) -> None:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": UserRole.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    faults = LockedDatabase(services(live_server.app).engine.sync_engine)
    try:
        await host.sign_in("host@acme.example")
        await guest.open("/")
        number = (await guest.post_json("/api/numbers")).json()["number"]
        room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
        faults.refuse("from rooms", 1)  # the lookup of the room for this socket
        async with guest.websocket(f"/ws/rooms/{room_id}", [SUBPROTOCOL]) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.UNAVAILABLE
        async with guest.websocket(f"/ws/rooms/{room_id}", [SUBPROTOCOL]) as ws:  # the page tries again
            assert (await receive_type(ws, "welcome"))["role"] == "guest"
    finally:
        faults.close()
        await host.aclose()
        await guest.aclose()
