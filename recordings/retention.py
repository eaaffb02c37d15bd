"""Recordings kept no longer than their org says (レコログ: days, 0 = keep): the periodic sweep.

Each node runs it now and then (``web.app``); deleting is idempotent, so nodes sweeping at once do no harm.
The file goes first, then the row: a row whose file is gone is swept again, never a file without its row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.storage import Storage
from recordings.models import Recording
from store.models import Org

SWEEP_EVERY = 3600.0  # seconds between sweeps on a node
BATCH = 500  # recordings deleted per transaction


async def sweep(sessions: async_sessionmaker[AsyncSession], storage: Storage, now: datetime) -> int:
    """Delete the recordings older than their org's retention at ``now``; how many."""
    removed = 0
    async with sessions() as db:
        orgs = list(
            await db.execute(
                select(Org.id, Org.recording_retention_days).where(Org.recording_retention_days > 0)
            )
        )
    for org_id, days in orgs:
        cutoff = now - timedelta(days=days)
        while True:
            async with sessions.begin() as db:
                old = list(
                    await db.scalars(
                        select(Recording)
                        .where(Recording.org_id == org_id, Recording.created_at < cutoff)
                        .limit(BATCH)
                    )
                )
                for recording in old:
                    await storage.delete(recording.key)
                    await db.delete(recording)
            removed += len(old)
            if len(old) < BATCH:
                break
    return removed
