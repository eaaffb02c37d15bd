"""Meeting records (商談記録): one row per meeting, started with the room and closed when it ends."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.models import MeetingRecord, PageView

CONNECT_ID_DIGITS = 7


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
    await db.execute(
        update(MeetingRecord)
        .where(MeetingRecord.room_id == room_id, MeetingRecord.ended_at.is_(None))
        .values(ended_at=ended_at)
    )


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
