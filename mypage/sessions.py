"""The page's own sessions: a random token in a cookie scoped to /my (only its SHA-256 is stored), for one
customer, expiring by the injected clock. Never a host's session: the two share nothing. Signing out ends
this browser's; "sign out everywhere" (and revoking the customer's links) ends every one."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from deals.models import Customer, CustomerMeeting
from mypage.links import digest
from mypage.models import MypageSession
from recordings.models import MeetingRecord
from signaling.models import RoomRow


async def start(db: AsyncSession, org_id: int, customer_id: int, now: datetime, hours: float) -> str:
    """A new session; returns the cookie's token. The customer's expired sessions go."""
    await db.execute(
        delete(MypageSession).where(MypageSession.customer_id == customer_id, MypageSession.expires_at <= now)
    )
    token = secrets.token_urlsafe(32)
    db.add(
        MypageSession(
            id=digest(token),
            org_id=org_id,
            customer_id=customer_id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    await db.flush()
    return token


async def customer_of(db: AsyncSession, token: str | None, now: datetime) -> Customer | None:
    """The customer whose live session ``token`` is, or None."""
    if not token or len(token) > 100:
        return None
    return await db.scalar(
        select(Customer)
        .join(MypageSession, MypageSession.customer_id == Customer.id)
        .where(
            MypageSession.id == digest(token),
            MypageSession.expires_at > now,
            MypageSession.org_id == Customer.org_id,
        )
    )


async def end(db: AsyncSession, token: str) -> None:
    await db.execute(delete(MypageSession).where(MypageSession.id == digest(token)))


async def end_all(db: AsyncSession, customer_id: int) -> int:
    done = await db.execute(delete(MypageSession).where(MypageSession.customer_id == customer_id))
    return int(done.rowcount)  # type: ignore[attr-defined]


async def known_browser(db: AsyncSession, customer_id: int, guest_token_hash: str) -> bool:
    """Whether this browser was the guest of one of the customer's meetings (its guest token, from the call,
    is bound to the room): such a browser opens the link without a code."""
    if not guest_token_hash:
        return False
    found = await db.scalar(
        select(RoomRow.id)
        .join(MeetingRecord, MeetingRecord.room_id == RoomRow.id)
        .join(CustomerMeeting, CustomerMeeting.record_id == MeetingRecord.id)
        .where(
            RoomRow.guest_token_hash == guest_token_hash,
            CustomerMeeting.customer_id == customer_id,
            RoomRow.org_id == MeetingRecord.org_id,
        )
        .limit(1)
    )
    return found is not None
