"""Customers: matched or made when a meeting starts, found by name, reading, company, email or phone (any
spelling), seen by whom, and merged (two records of one person become one, with a preview of what moves).

A host sees the customers it owns (met first) and those of its own deals, unless the org shares customers;
managers and admins see the org's. Other orgs' customers are never returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, InvalidInput, NotFound
from deals.models import Channel, Customer, CustomerMeeting, Deal
from recordings.models import MeetingRecord
from signaling.phone import search_phone
from store.models import Org, Role, User

PAGE_SIZE = 50
PHONE_TAKEN = N_("Customer No. {other} already has this phone number: merge the two records instead.")
SAME_CUSTOMER = N_("Choose two different customers to merge.")


@dataclass(frozen=True)
class Scope:
    """Whose customers and deals a person sees: one org's, and for a host of a private org only its own."""

    org_id: int
    host_id: int | None  # None: the whole org

    @classmethod
    def of(cls, user: User, org: Org) -> Scope:
        private = user.role == Role.HOST and not org.share_customers
        return cls(user.org_id, user.id if private else None)


def customer_visible(scope: Scope) -> ColumnElement[bool]:
    condition = Customer.org_id == scope.org_id
    if scope.host_id is not None:
        own_deal = select(Deal.id).where(Deal.customer_id == Customer.id, Deal.host_id == scope.host_id)
        condition = condition & or_(Customer.owner_id == scope.host_id, own_deal.exists())
    return condition


async def get(db: AsyncSession, scope: Scope, customer_id: int) -> Customer:
    """The customer, if ``scope`` sees it; NotFound otherwise (never reveal that it exists)."""
    found = await db.scalar(select(Customer).where(Customer.id == customer_id, customer_visible(scope)))
    if found is None:
        raise NotFound()
    return found


async def match_or_create(db: AsyncSession, org_id: int, owner_id: int | None, phone: str) -> Customer:
    """The org's customer with this E.164 number, or a new one owned by the host. Safe when two meetings
    with one new number start at once: the unique index lets one insert win, the other finds it."""
    found = await by_phone(db, org_id, phone)
    if found is not None:
        return found
    try:
        async with db.begin_nested():  # a savepoint: losing a race to the same number rolls back only this
            made = Customer(org_id=org_id, owner_id=owner_id, phone=phone)
            db.add(made)
        return made
    except IntegrityError:  # another meeting with this number made the customer a moment ago
        found = await by_phone(db, org_id, phone)
        assert found is not None
        return found


async def by_phone(db: AsyncSession, org_id: int, phone: str) -> Customer | None:
    """The org's customer with this E.164 number (one at most: a unique index)."""
    return await db.scalar(select(Customer).where(Customer.org_id == org_id, Customer.phone == phone))


async def check_phone_free(db: AsyncSession, org_id: int, phone: str, customer_id: int | None) -> None:
    """Refuse a number another customer of the org has (they are the same person: merge them instead)."""
    other = await by_phone(db, org_id, phone) if phone else None
    if other is not None and other.id != customer_id:
        raise InvalidInput(PHONE_TAKEN, other=other.id)


async def attach_meeting(db: AsyncSession, record_id: int, customer_id: int) -> None:
    """The meeting record is now the customer's (replacing any earlier choice)."""
    link = await db.get(CustomerMeeting, record_id)
    if link is None:
        db.add(CustomerMeeting(record_id=record_id, customer_id=customer_id))
    else:
        link.customer_id = customer_id
    await db.flush()


async def customer_of_record(db: AsyncSession, record_id: int) -> int | None:
    return await db.scalar(select(CustomerMeeting.customer_id).where(CustomerMeeting.record_id == record_id))


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def text_matches(query: str) -> ColumnElement[bool] | None:
    """Customers whose name, reading, company, email or phone match ``query`` (None: no condition).

    A query that reads as a whole phone number, in any spelling, matches its E.164 form exactly; digits
    alone also match part of a number (``5678``)."""
    query = query.strip()
    if not query:
        return None
    phone = search_phone(query)
    if phone is not None:
        return Customer.phone == phone
    like = f"%{_escaped(query.casefold())}%"
    fields = [Customer.name, Customer.reading, Customer.company, Customer.email]
    condition = or_(*(func.lower(field).like(like, escape="\\") for field in fields))
    digits = "".join(ch for ch in query if ch.isascii() and ch.isdigit())
    if digits and len(digits) == len(query.replace("-", "")):
        condition = condition | Customer.phone.like(f"%{digits.lstrip('0')}%")
    return condition


async def search(db: AsyncSession, scope: Scope, query: str, page: int = 1) -> tuple[list[Customer], int]:
    """One page of the customers ``scope`` sees matching ``query``, last updated first, and their count."""
    where = [customer_visible(scope)]
    matched = text_matches(query)
    if matched is not None:
        where.append(matched)
    total = int(await db.scalar(select(func.count()).select_from(Customer).where(*where)) or 0)
    rows = await db.scalars(
        select(Customer)
        .where(*where)
        .order_by(Customer.updated_at.desc(), Customer.id.desc())
        .limit(PAGE_SIZE)
        .offset((max(1, page) - 1) * PAGE_SIZE)
    )
    return list(rows), total


async def meetings(db: AsyncSession, scope: Scope, customer_id: int) -> list[MeetingRecord]:
    """The customer's meeting records ``scope`` sees (a private org's host: its own), newest first."""
    query = (
        select(MeetingRecord)
        .join(CustomerMeeting, CustomerMeeting.record_id == MeetingRecord.id)
        .where(CustomerMeeting.customer_id == customer_id, MeetingRecord.org_id == scope.org_id)
        .order_by(MeetingRecord.started_at.desc(), MeetingRecord.id.desc())
    )
    if scope.host_id is not None:
        query = query.where(MeetingRecord.host_id == scope.host_id)
    return list(await db.scalars(query))


@dataclass(frozen=True)
class MergePreview:
    """What merging ``drop`` into ``keep`` moves, shown before it is done."""

    keep: Customer
    drop: Customer
    meetings: int
    deals: int
    filled: dict[str, str]  # keep's empty fields that take drop's values


FIELDS = ("name", "reading", "company", "phone", "email")


async def merge_preview(db: AsyncSession, scope: Scope, keep_id: int, drop_id: int) -> MergePreview:
    if keep_id == drop_id:
        raise InvalidInput(SAME_CUSTOMER)
    keep, drop = await get(db, scope, keep_id), await get(db, scope, drop_id)
    n_meetings = await db.scalar(
        select(func.count()).select_from(CustomerMeeting).where(CustomerMeeting.customer_id == drop.id)
    )
    n_deals = await db.scalar(select(func.count()).select_from(Deal).where(Deal.customer_id == drop.id))
    filled = {name: getattr(drop, name) for name in FIELDS if not getattr(keep, name) and getattr(drop, name)}
    return MergePreview(keep, drop, int(n_meetings or 0), int(n_deals or 0), filled)


async def merge(db: AsyncSession, scope: Scope, keep_id: int, drop_id: int, now: datetime) -> MergePreview:
    """Move ``drop``'s meetings and deals to ``keep``, fill ``keep``'s empty fields, delete ``drop``."""
    preview = await merge_preview(db, scope, keep_id, drop_id)
    keep, drop = preview.keep, preview.drop
    await db.execute(
        update(CustomerMeeting).where(CustomerMeeting.customer_id == drop.id).values(customer_id=keep.id)
    )
    await db.execute(update(Deal).where(Deal.customer_id == drop.id).values(customer_id=keep.id))
    channel = drop.channel
    # Gone before its number moves: one customer per number at every moment (the unique index).
    await db.execute(delete(Customer).where(Customer.id == drop.id))
    db.expunge(drop)
    for name, value in preview.filled.items():
        setattr(keep, name, value)
    if keep.channel == Channel.UNSET:
        keep.channel = channel
    keep.updated_at = now
    await db.flush()
    return preview
