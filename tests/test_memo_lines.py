"""Who wrote each memo line, and when: replayed from the stored updates, and kept across compaction (which
merges the updates and would otherwise forget their authors)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from starlette.applications import Starlette

from recordings.models import MeetingRecord, MemoUpdate
from signaling import memo_lines
from signaling.memo import SharedMemo
from signaling.rooms import DatabaseRoomStore
from signaling.writer import MemoRow, RoomWriter
from store.models import Role
from tests.helpers import open_room, seed_org
from web.services import services

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def test_each_line_gets_the_author_and_time_of_the_edit_that_completed_it() -> None:
    memo = SharedMemo()
    updates = []
    for i, ch in enumerate("見積"):
        updates.append((memo.insert(i, ch), "host", T0 + timedelta(seconds=i)))
    updates.append((memo.insert(2, "もり\n"), "guest", T0 + timedelta(seconds=10)))
    updates.append((memo.insert(len("見積もり\n"), "納期は来週"), "host", T0 + timedelta(seconds=20)))
    lines = memo_lines.attribute(updates)
    assert [(line.text, line.author) for line in lines] == [("見積もり", "guest"), ("納期は来週", "host")]
    assert lines[0].at == (T0 + timedelta(seconds=10)).isoformat()
    assert memo_lines.load(memo_lines.dump(lines)) == lines
    assert memo_lines.load("not json") == [] and memo_lines.load('[{"text": 1}]') == []


def test_a_merged_row_keeps_known_authors_and_credits_nobody_with_the_rest() -> None:
    memo = SharedMemo()
    first = memo.insert(0, "挨拶\n")
    second = memo.insert(len("挨拶\n"), "ご予算")
    merged = memo.state_update()
    known = [memo_lines.MemoLine("挨拶", "guest", T0.isoformat())]
    third = memo.insert(len("挨拶\nご予算"), "\n次回")
    lines = memo_lines.attribute([(merged, "merged", T0), (third, "host", T0 + timedelta(minutes=5))], known)
    authors = [(line.text, line.author) for line in lines]
    assert authors == [("挨拶", "guest"), ("ご予算", ""), ("次回", "host")]
    assert first and second


async def test_compaction_keeps_the_authors_in_the_record(app: Starlette) -> None:
    seeded = await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    room_id, _connect_id = await open_room(app, seeded)
    store = DatabaseRoomStore(services(app).sessions, lambda *_: None)  # type: ignore[arg-type]
    writer = RoomWriter(store)
    writer.memo_compact_rows = 20
    writer.opened(room_id, 0)
    memo = SharedMemo()
    start = T0.timestamp()
    for i, ch in enumerate("お見積もりの件"):  # the host's line, a keystroke at a time
        await writer.put(MemoRow(room_id, memo.insert(i, ch), "host", start + i))
    await writer.flush()
    offset = len("お見積もりの件")
    for i, ch in enumerate("\n承知しました。社内で確認します"):  # the guest's, past the compaction threshold
        await writer.put(MemoRow(room_id, memo.insert(offset + i, ch), "guest", start + 100 + i))
        await writer.flush()
    async with services(app).sessions() as db:
        rows = await db.scalar(select(func.count()).where(MemoUpdate.room_id == room_id))
        merged = await db.scalar(
            select(func.count()).where(MemoUpdate.room_id == room_id, MemoUpdate.author == "merged")
        )
        record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
    assert merged == 1 and rows is not None and rows < 25  # compacted at least once
    assert record is not None and "お見積もりの件" in record.memo  # the text so far is already in the record
    await store.memo_final(room_id, memo.text())
    await writer.aclose()
    async with services(app).sessions() as db:
        record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
    assert record is not None
    lines = [(line["text"], line["author"]) for line in json.loads(record.memo_lines)]
    assert lines == [("お見積もりの件", "host"), ("承知しました。社内で確認します", "guest")]
    assert record.memo == "お見積もりの件\n承知しました。社内で確認します"
