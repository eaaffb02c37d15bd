"""Deletion requests: a customer asks, from their page, for their data to be deleted. The request is kept
(the org's admins list it, and mark it handled) and each active admin is told by email through the outbox.
Deleting is the admins' act (a customer's record in the console), never the page's: a stolen session must
not be able to erase what the org has to keep."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, InvalidInput
from deals.models import Customer
from mypage.models import DeletionRequest
from store.models import Role, User

MESSAGE_LIMIT = 2000
TOO_LONG = N_("The message is too long (up to {limit} characters).")


def label(customer: Customer) -> str:
    return " / ".join(part for part in (customer.name, customer.phone, customer.email) if part)[:300]


async def ask(db: AsyncSession, customer: Customer, message: str, now: datetime) -> DeletionRequest | None:
    """A new request, or None when one of the customer's is still open (asking again tells nobody twice)."""
    message = message.strip()
    if len(message) > MESSAGE_LIMIT:
        raise InvalidInput(TOO_LONG, limit=MESSAGE_LIMIT)
    still_open = await db.scalar(
        select(DeletionRequest.id).where(
            DeletionRequest.customer_id == customer.id,
            DeletionRequest.org_id == customer.org_id,
            DeletionRequest.handled_at.is_(None),
        )
    )
    if still_open is not None:
        return None
    row = DeletionRequest(
        org_id=customer.org_id,
        customer_id=customer.id,
        customer_label=label(customer) or f"#{customer.id}",
        message=message,
        requested_at=now,
    )
    try:
        # Two requests at once both see none open: the unique index on open requests keeps one, so the
        # admins are told once.
        async with db.begin_nested():
            db.add(row)
    except IntegrityError:
        return None
    return row


async def admins(db: AsyncSession, org_id: int) -> list[User]:
    rows = await db.scalars(
        select(User).where(User.org_id == org_id, User.role == Role.ADMIN, User.is_active.is_(True))
    )
    return list(rows)


async def open_requests(db: AsyncSession, org_id: int) -> list[DeletionRequest]:
    rows = await db.scalars(
        select(DeletionRequest)
        .where(DeletionRequest.org_id == org_id)
        .order_by(DeletionRequest.handled_at.is_not(None), DeletionRequest.id.desc())
        .limit(200)
    )
    return list(rows)


async def mark_handled(db: AsyncSession, org_id: int, request_id: int, now: datetime) -> bool:
    done = await db.execute(
        update(DeletionRequest)
        .where(
            DeletionRequest.id == request_id,
            DeletionRequest.org_id == org_id,
            DeletionRequest.handled_at.is_(None),
        )
        .values(handled_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]
