"""Meeting records (商談記録): one row per meeting, started with the room and closed when it ends."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.models import MeetingRecord

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
