"""Links to a customer's page: made with a random token (only its SHA-256 is kept), valid for a number of
days, revocable. Opening one tells apart a link that works, one revoked, one expired, and one never made
(the last is a plain 404: nothing is revealed about it)."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utc
from core.errors import NotFound
from mypage.models import MypageLink


class LinkState(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedLink:
    row: MypageLink
    token: str  # for the message only; never stored


async def issue(
    db: AsyncSession, org_id: int, customer_id: int, sent_by: int | None, now: datetime, days: float
) -> IssuedLink:
    token = secrets.token_urlsafe(32)
    row = MypageLink(
        token_hash=digest(token),
        org_id=org_id,
        customer_id=customer_id,
        sent_by=sent_by,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.add(row)
    await db.flush()
    return IssuedLink(row, token)


def state(link: MypageLink, now: datetime) -> LinkState:
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if utc(link.expires_at) <= now:
        return LinkState.EXPIRED
    return LinkState.VALID


async def find(db: AsyncSession, token: str) -> MypageLink:
    """The link with this token, whatever its state; NotFound for a token never issued."""
    if not token or len(token) > 100:
        raise NotFound()
    found = await db.scalar(select(MypageLink).where(MypageLink.token_hash == digest(token)))
    if found is None:
        raise NotFound()
    return found


async def revoke_all(db: AsyncSession, customer_id: int, now: datetime) -> int:
    """Every live link of the customer stops working; returns how many were live."""
    done = await db.execute(
        update(MypageLink)
        .where(MypageLink.customer_id == customer_id, MypageLink.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


async def of_customer(db: AsyncSession, customer_id: int) -> list[MypageLink]:
    rows = await db.scalars(
        select(MypageLink).where(MypageLink.customer_id == customer_id).order_by(MypageLink.id.desc())
    )
    return list(rows)
