"""Meeting records (商談記録): one row per meeting, started with the room and closed when it ends."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import NamedTuple, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utc
from recordings.guest_info import reindex
from recordings.models import MeetingRecord, MemoUpdate, PageView

CONNECT_ID_DIGITS = 7
_MEMO_UPDATES = cast(Table, MemoUpdate.__table__)  # written through Core: keystrokes come by the thousand
_SQLITE_INSERT_MEMO = (
    f'INSERT INTO {_MEMO_UPDATES.name} (room_id, "update", author, created_at) VALUES (?, ?, ?, ?)'
)


class StoredMemoUpdate(NamedTuple):
    id: int
    update: bytes
    author: str
    created_at: datetime
    authors: str | None  # a merged row's authorship (JSON)


def new_connect_id() -> str:
    return f"{secrets.randbelow(10**CONNECT_ID_DIGITS):0{CONNECT_ID_DIGITS}d}"


async def start_record(
    db: AsyncSession, *, org_id: int, room_id: str, host_id: int, via: str, started_at: datetime
) -> MeetingRecord:
    """Create the record with a fresh 7-digit 接続ID (retrying the rare clash with an existing one)."""
    for _ in range(20):
        record = MeetingRecord(
            org_id=org_id,
            room_id=room_id,
            host_id=host_id,
            connect_id=new_connect_id(),
            via=via,
            started_at=started_at,
        )
        try:
            async with db.begin_nested():
                db.add(record)
        except IntegrityError:
            continue
        return record
    raise RuntimeError("could not find a free connect id")  # 20 clashes in 10 million: the table is full


async def end_record(db: AsyncSession, room_id: str, ended_at: datetime) -> None:
    record = await db.scalar(
        select(MeetingRecord).where(MeetingRecord.room_id == room_id, MeetingRecord.ended_at.is_(None))
    )
    if record is not None:
        record.ended_at = ended_at
        record.duration_seconds = max(0, round((utc(ended_at) - utc(record.started_at)).total_seconds()))


async def record_for_room(db: AsyncSession, room_id: str) -> MeetingRecord | None:
    return await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))


async def record_page_shown(
    db: AsyncSession, room_id: str, document_id: int | None, page: int, at: datetime
) -> None:
    """From ``at``, ``page`` of ``document_id`` is on screen (or nothing, for None): close the page view
    that was open and start the next one."""
    await db.execute(
        update(PageView).where(PageView.room_id == room_id, PageView.ended_at.is_(None)).values(ended_at=at)
    )
    if document_id is not None:
        db.add(PageView(room_id=room_id, document_id=document_id, page=page, started_at=at))


async def page_views(db: AsyncSession, room_id: str) -> list[PageView]:
    result = await db.scalars(select(PageView).where(PageView.room_id == room_id).order_by(PageView.id))
    return list(result)


def dwell_seconds(views: list[PageView]) -> dict[tuple[int, int], float]:
    """Seconds each (document, page) was on screen, over closed views."""
    dwell: dict[tuple[int, int], float] = {}
    for view in views:
        if view.ended_at is not None:
            key = (view.document_id, view.page)
            dwell[key] = dwell.get(key, 0.0) + (view.ended_at - view.started_at).total_seconds()
    return dwell


# 共有メモ: the memo's durable log (one row per Yjs update, with its author and time) and its final text.


async def add_memo_updates(db: AsyncSession, rows: list[tuple[str, bytes, str, datetime]]) -> None:
    """Append ``(room_id, update, author, at)`` rows, in this order (ids keep the arrival order).

    One executemany on the table: thousands of rows a second, no ORM bookkeeping per row. On SQLite it goes
    to the driver as tuples: SQLAlchemy's own executemany spent as much again per row on its parameters (a
    dict per row, compiled parameters) as SQLite on the insert (bench/README.md, issue 17)."""
    if not rows:
        return
    connection = await db.connection()
    dialect = connection.dialect
    if dialect.name == "sqlite":
        await connection.exec_driver_sql(
            _SQLITE_INSERT_MEMO, [(r, data, who, sqlite_datetime(when)) for r, data, who, when in rows]
        )
        return
    await connection.execute(
        insert(_MEMO_UPDATES),
        [{"room_id": r, "update": data, "author": who, "created_at": when} for r, data, who, when in rows],
    )


def sqlite_datetime(moment: datetime) -> str:
    """``moment`` as SQLAlchemy's SQLite DATETIME stores it ("2026-12-02 07:17:01.000123", its fields as
    they are, the zone left out), by datetime's own C formatting: SQLAlchemy's formatter took ~2 µs a row.
    tests/test_memo_log_store.py holds the two equal."""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


async def memo_updates(db: AsyncSession, room_id: str) -> list[StoredMemoUpdate]:
    """The room's stored updates, oldest first, as plain rows (compaction reads hundreds at a time)."""
    result = await db.execute(
        select(MemoUpdate.id, MemoUpdate.update, MemoUpdate.author, MemoUpdate.created_at, MemoUpdate.authors)
        .where(MemoUpdate.room_id == room_id)
        .order_by(MemoUpdate.id)
    )
    return [StoredMemoUpdate(*row) for row in result]


async def count_memo_updates(db: AsyncSession, room_id: str) -> int:
    return int(await db.scalar(select(func.count()).where(MemoUpdate.room_id == room_id)) or 0)


async def replace_memo_updates(
    db: AsyncSession, room_id: str, up_to_id: int, merged: bytes, at: datetime, authors: str
) -> None:
    """Compaction: the rows up to ``up_to_id`` become one merged row (author ``merged``, the last time),
    with ``authors``, who wrote which part of its text."""
    await db.execute(delete(MemoUpdate).where(MemoUpdate.room_id == room_id, MemoUpdate.id <= up_to_id))
    row = {"id": up_to_id, "room_id": room_id, "update": merged, "author": "merged", "created_at": at}
    await db.execute(insert(_MEMO_UPDATES), [{**row, "authors": authors}])


async def save_memo(db: AsyncSession, room_id: str, text: str) -> None:
    """Keep the memo's text in the record, and make it searchable. Who wrote which line is not copied here:
    it stays with the memo's log (``memo_updates.authors``, signaling/memo_authors.py)."""
    record = await record_for_room(db, room_id)
    if record is None:
        return
    record.memo = text
    await db.flush()
    await reindex(db, record)
