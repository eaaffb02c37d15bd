"""同席: the meeting record keeps who sat in on a live meeting (read-only, a manager or admin), from when
until when, and whether the participants were shown 「上長が同席中」."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.models import SitIn


async def start(
    db: AsyncSession, *, record_id: int, user_id: int, user_name: str, announced: bool, at: datetime
) -> int:
    row = SitIn(record_id=record_id, user_id=user_id, user_name=user_name, announced=announced, started_at=at)
    db.add(row)
    await db.flush()
    return row.id


async def finish(db: AsyncSession, sit_in_id: int, at: datetime) -> None:
    await db.execute(update(SitIn).where(SitIn.id == sit_in_id, SitIn.ended_at.is_(None)).values(ended_at=at))


async def for_record(db: AsyncSession, record_id: int) -> list[SitIn]:
    return list(await db.scalars(select(SitIn).where(SitIn.record_id == record_id).order_by(SitIn.id)))
