"""共有メモ's durable log in the database (recordings/records.py): rows written in batches, on SQLite through
the driver, on PostgreSQL through SQLAlchemy Core, read back alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import utc
from recordings.models import MemoUpdate
from recordings.records import add_memo_updates, memo_updates


async def test_rows_keep_their_order_bytes_author_and_time_to_the_microsecond(
    migrated_sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = datetime(2026, 12, 2, 23, 59, 59, 999_990, tzinfo=UTC)  # crosses a day in UTC, not in JST
    written = [
        (
            ("r1", "r2")[i % 2],
            bytes([i]) * (i + 1) + b"\x00\xff",
            ("host", "guest")[i // 2 % 2],
            start + timedelta(microseconds=7 * i),
        )
        for i in range(12)
    ]
    async with migrated_sessions.begin() as db:
        await add_memo_updates(db, written[:5])
        await add_memo_updates(db, [])  # an empty batch writes nothing
    async with migrated_sessions.begin() as db:
        await add_memo_updates(db, written[5:])
    async with migrated_sessions() as db:
        for room in ("r1", "r2"):
            stored = await memo_updates(db, room)
            assert [(row.update, row.author, utc(row.created_at)) for row in stored] == [
                (update, author, at) for room_id, update, author, at in written if room_id == room
            ]
        # The ORM reads the rows the same way (the meeting record and the replay read them so).
        orm = list(await db.scalars(select(MemoUpdate).order_by(MemoUpdate.id)))
        # ... and compares them with times in queries as it stores its own (SQLite compares them as text).
        since = start + timedelta(microseconds=35)
        later = list(await db.scalars(select(MemoUpdate.id).where(MemoUpdate.created_at >= since)))
    assert [(row.room_id, utc(row.created_at)) for row in orm] == [(r, at) for r, _u, _a, at in written]
    assert later == [row.id for row in orm][5:]
