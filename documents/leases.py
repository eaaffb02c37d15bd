"""Leases on documents being processed: which node renders a document, so that two never render it twice and a
document left 処理中 by a node that died is picked up again.

A lease is three columns of the document's row: ``lease_node`` (who holds it), ``lease_until`` (seconds on
the injectable clock, shared by the nodes: a wall clock kept in step, as NTP does) and ``attempts`` (how
many times a node took it). Taking and renewing are single conditional UPDATEs, so the database decides
between nodes that race — no lock held, no home-made consensus:

- :func:`take` succeeds for one caller only, and only while the document is still PROCESSING and its lease
  is free (never taken) or expired (its node stopped renewing it: died, or its loop stalled past the lease).
  A node restarted under the same id waits for its previous life's lease to lapse like any other: it cannot
  tell that life from another process under its name (``tsunagu demo`` seeding beside a running server).
- :func:`renew` succeeds only for the holder; a holder that lost its lease stops writing (the job's row
  updates are conditional on the lease too, see ``documents.library``).
- :func:`orphaned` lists the documents a node may take: processing, lease free or expired.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from documents.models import Document, DocumentStatus

LEASE_SECONDS = 30.0  # a document whose node stopped renewing it this long ago is taken over
RENEW_EVERY = 10.0  # the holder renews its lease this often (three chances before it lapses)
MAX_ATTEMPTS = 2  # a document that was taken this many times and never finished is failed, not retried


def _free(now: float) -> ColumnElement[bool]:
    return and_(
        Document.status == DocumentStatus.PROCESSING,
        or_(Document.lease_until.is_(None), Document.lease_until < now),
    )


async def orphaned(db: AsyncSession, now: float) -> list[tuple[int, int, int]]:
    """(document id, org id, attempts so far) of the documents a node may take at ``now``."""
    found = select(Document.id, Document.org_id, Document.attempts).where(_free(now))
    rows = await db.execute(found.order_by(Document.id))
    return [(doc_id, org_id, attempts) for doc_id, org_id, attempts in rows]


async def take(db: AsyncSession, doc_id: int, node_id: str, now: float) -> bool:
    """Take the lease of ``doc_id`` for ``node_id`` until ``now`` + :data:`LEASE_SECONDS`; True when it is
    this caller's."""
    result = await db.execute(
        update(Document)
        .where(Document.id == doc_id, _free(now))
        .values(lease_node=node_id, lease_until=now + LEASE_SECONDS, attempts=Document.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def renew(db: AsyncSession, doc_id: int, node_id: str, now: float) -> bool:
    """Extend ``node_id``'s lease on ``doc_id``; False when it no longer holds it (taken over, finished,
    deleted)."""
    result = await db.execute(
        update(Document)
        .where(
            Document.id == doc_id,
            Document.status == DocumentStatus.PROCESSING,
            Document.lease_node == node_id,
        )
        .values(lease_until=now + LEASE_SECONDS)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1
