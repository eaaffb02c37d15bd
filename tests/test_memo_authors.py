"""共有メモ: who wrote each line (the 商談記録's view), from the memo's log, before and after compaction."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.applications import Starlette

from recordings.models import MeetingRecord, MemoUpdate
from signaling.hub import RoomHub
from signaling.memo import SharedMemo, parse_sync_message, text_of
from signaling.memo_authors import GRAIN_SECONDS, MERGED, LoggedUpdate, MemoLine, compacted, line_authors
from signaling.protocol import Role
from signaling.rooms import DatabaseRoomStore, memo_lines, memo_text
from signaling.writer import MEMO_COMPACT_ROWS, MemoRow, RoomWriter
from store.models import Role as UserRole
from tests.helpers import open_room, seed_org
from tests.test_memo import Client, rows
from web.services import services


def logged(
    client: Client, author: str, at: float, position: int, insert: str = "", delete: int = 0
) -> LoggedUpdate:
    data = base64.b64decode(client.edit(position, insert, delete).data)
    return LoggedUpdate(parse_sync_message(data)[1], author, at)


def test_each_line_names_who_wrote_it_and_when() -> None:
    host, guest = Client(), Client()
    log = [logged(host, "host", 100, 0, "ご要望😀\n\n")]
    guest.doc.apply_update(host.doc.get_update())
    log.append(logged(guest, "guest", 200, 99, "予算は未定"))
    host.doc.apply_update(guest.doc.get_update())
    log.append(logged(host, "host", 300, 99, "\n来週"))
    guest.doc.apply_update(host.doc.get_update())
    log.append(logged(guest, "guest", 400, 5, "見積もり"))  # on the empty line
    log.append(logged(guest, "guest", 500, 3, "(至急)"))  # inside the host's first line
    assert line_authors(log) == [
        MemoLine("ご要望(至急)😀", ("host", "guest"), 100),
        MemoLine("見積もり", ("guest",), 400),
        MemoLine("予算は未定", ("guest",), 200),
        MemoLine("来週", ("host",), 300),
    ]
    assert line_authors([]) == [MemoLine("", (), None)]


def test_runs_of_one_author_within_a_minute_are_one() -> None:
    client = Client()
    log = [logged(client, "host", 1000 + i * 10, i, "あ") for i in range(6)]  # 10 s apart: one run
    log.append(logged(client, "host", 2000, 99, "\nい"))  # much later: its own
    merged, authors, _ = compacted(log)
    assert authors == '[["host", 1000, 18], ["host", 2000, 4]]'
    assert line_authors([LoggedUpdate(merged, MERGED, 2000, authors)]) == [
        MemoLine("ああああああ", ("host",), 1000),
        MemoLine("い", ("host",), 2000),
    ]


def test_rows_merged_without_authorship_are_merged() -> None:
    client = Client()
    log = [logged(client, "host", 10, 0, "古い行"), logged(client, "guest", 20, 99, "\n新しい行")]
    merged, _, _ = compacted(log[:1])
    for authors in (None, "not json", '[["host", 10, 999]]'):  # never kept, unreadable, or not this text
        view = line_authors([LoggedUpdate(merged, MERGED, 10, authors), log[1]])
        assert view == [MemoLine("古い行", (MERGED,), 10), MemoLine("新しい行", ("guest",), 20)]


edits = st.lists(
    st.tuples(
        st.sampled_from(["host", "guest"]),
        st.integers(0, 30),
        st.text("あaé😀\n", max_size=5),
        st.integers(0, 4),
        st.integers(0, 200),  # seconds since the previous edit
        st.booleans(),  # compact after this edit
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits)
def test_compaction_keeps_every_lines_authors(plan: list[tuple[Any, ...]]) -> None:
    clients = {"host": Client(), "guest": Client()}
    log: list[LoggedUpdate] = []
    stored: list[LoggedUpdate] = []  # the log as the database keeps it, compacted now and then
    now = 0.0
    for author, position, insert, delete, pause, compact in plan:
        now += pause
        row = logged(clients[author], author, now, position, insert, delete)
        other = clients["guest" if author == "host" else "host"]
        other.doc.apply_update(clients[author].doc.get_update(other.doc.get_state()))
        log.append(row)
        stored.append(row)
        if compact and len(stored) > 1:
            merged, authors, text = compacted(stored)
            assert text == text_of([merged])  # the meeting record's copy is the merged memo's text
            stored = [LoggedUpdate(merged, MERGED, now, authors)]
    view, full = line_authors(stored), line_authors(log)
    assert [(line.text, line.authors) for line in view] == [(line.text, line.authors) for line in full]
    # Times are to the grain: a replayed batch takes its first row's time (up to a grain early), and a run
    # joined to its author's neighbour takes the earlier time (another grain), so the two ways of counting
    # may differ by up to two grains (Hypothesis found 61 s with one).
    for line, same in zip(view, full, strict=True):
        assert (line.at is None) == (same.at is None)
        assert line.at is None or same.at is None or abs(line.at - same.at) <= 2 * GRAIN_SECONDS
    assert "\n".join(line.text for line in view) == str(clients["host"].text)
    assert all(MERGED not in line.authors for line in view)


async def test_the_long_memo_of_a_real_room_keeps_its_authors_through_compaction(app: Starlette) -> None:
    room_id, _ = await open_room(app, await seed_org(app, "acme", {"host@acme.example": UserRole.HOST}))
    hub: RoomHub = services(app).hub
    assert hub.writer.memo_compact_rows == MEMO_COMPACT_ROWS
    host_doc, guest_doc = Client(), Client()
    expected: list[tuple[str, tuple[str, ...]]] = []
    async with hub.participate(room_id, Role.HOST) as host, hub.participate(room_id, Role.GUEST) as guest:
        for line in range(30):  # 30 lines of 10 characters, each character its own update: 330 rows
            role, doc, other = (
                (Role.HOST, host_doc, guest_doc) if line % 2 == 0 else (Role.GUEST, guest_doc, host_doc)
            )
            participant = host if role == Role.HOST else guest
            words = f"{line:02d}行目の{'ご要望' if role == Role.HOST else 'お返事'}です"
            for character in words + "\n":
                await participant.send(doc.edit(len(str(doc.text)), character))
                other.doc.apply_update(doc.doc.get_update(other.doc.get_state()))
            expected.append((words, (role.value,)))
        await asyncio.sleep(0.2)
        await hub.flush()
        await guest.send(guest_doc.edit(2, "★"))  # the guest edits the host's first line
        await asyncio.sleep(0.1)
        await hub.flush()
    assert len(await rows(app, room_id)) < 200  # compacted at least once
    expected[0] = ("00★行目のご要望です", ("host", "guest"))
    async with services(app).sessions() as db:
        lines = await memo_lines(db, room_id)
        assert "\n".join(line.text for line in lines) == await memo_text(db, room_id)
    assert [(line.text, line.authors) for line in lines] == [*expected, ("", ())]


async def test_compaction_puts_the_text_so_far_in_the_record_and_keeps_the_authors(app: Starlette) -> None:
    """Compaction also keeps the memo's text so far in the meeting record (searchable in 商談記録 while the
    meeting goes on); the authors stay with the log, and the record's final text comes at the end."""
    room_id, _ = await open_room(app, await seed_org(app, "acme", {"host@acme.example": UserRole.HOST}))
    store = DatabaseRoomStore(services(app).sessions, lambda *_: None)  # type: ignore[arg-type]
    writer = RoomWriter(store)
    writer.memo_compact_rows = 20
    writer.opened(room_id, 0)
    memo = SharedMemo()
    start = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    for i, ch in enumerate("お見積もりの件"):  # the host's line, a keystroke at a time
        await writer.put(MemoRow(room_id, memo.insert(i, ch), "host", start + i))
    await writer.flush()
    offset = len("お見積もりの件")
    for i, ch in enumerate("\n承知しました。社内で確認します"):  # the guest's, past the compaction threshold
        await writer.put(MemoRow(room_id, memo.insert(offset + i, ch), "guest", start + 100 + i))
        await writer.flush()
    async with services(app).sessions() as db:
        count = await db.scalar(select(func.count()).where(MemoUpdate.room_id == room_id))
        merged = await db.scalar(
            select(func.count()).where(MemoUpdate.room_id == room_id, MemoUpdate.author == MERGED)
        )
        record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
    assert merged == 1 and count is not None and count < 25  # compacted at least once
    assert record is not None and "お見積もりの件" in record.memo  # the text so far is already in the record
    await store.memo_final(room_id, memo.text())
    await writer.aclose()
    async with services(app).sessions() as db:
        record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
        lines = await memo_lines(db, room_id)
    assert record is not None and record.memo == "お見積もりの件\n承知しました。社内で確認します"
    assert [(line.text, line.authors) for line in lines] == [
        ("お見積もりの件", ("host",)),
        ("承知しました。社内で確認します", ("guest",)),
    ]
    assert lines[0].at == start and lines[1].at is not None and start + 100 <= lines[1].at <= start + 116
