"""Which deals match a filter (the deals list, its bulk change and its CSV): status, host, dates, customer
text, desire flags and survey answers; one page of them, or all of them a chunk at a time for the CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import utc
from deals.customers import Scope, text_matches
from deals.models import Customer, Deal, DealStatus, Survey, SurveyAnswer
from deals.pipeline import deal_visible
from deals.surveys import answers
from store.models import User

PAGE_SIZE = 100
EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class DealFilter:
    scope: Scope
    status_id: int | None = None
    host_id: int | None = None
    created_from: datetime | None = None  # inclusive, aware
    created_before: datetime | None = None  # exclusive, aware
    customer: str = ""  # name, reading, company, email or phone (deals.customers.text_matches)
    desire: str = ""  # a desire flag ticked
    answer: str = ""  # any survey answer (quote, close or end)


class DealRow(NamedTuple):
    id: int
    title: str
    status_id: int
    status: str
    host_id: int | None
    host_name: str
    customer_id: int
    customer_name: str
    customer_reading: str
    customer_company: str
    customer_phone: str
    customer_email: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    Deal.id,
    Deal.title,
    Deal.status_id,
    DealStatus.name,
    Deal.host_id,
    func.coalesce(User.display_name, "").label("host_name"),
    Deal.customer_id,
    Customer.name,
    Customer.reading,
    Customer.company,
    Customer.phone,
    Customer.email,
    Deal.created_at,
    Deal.updated_at,
)


def _answered(survey_in: tuple[Survey, ...], label: str) -> ColumnElement[bool]:
    return (
        select(SurveyAnswer.id)
        .where(
            SurveyAnswer.deal_id == Deal.id, SurveyAnswer.survey.in_(survey_in), SurveyAnswer.label == label
        )
        .exists()
    )


def conditions(f: DealFilter) -> list[ColumnElement[bool]]:
    where = [deal_visible(f.scope)]
    if f.status_id is not None:
        where.append(Deal.status_id == f.status_id)
    if f.host_id is not None:
        where.append(Deal.host_id == f.host_id)
    if f.created_from is not None:
        where.append(Deal.created_at >= utc(f.created_from))
    if f.created_before is not None:
        where.append(Deal.created_at < utc(f.created_before))
    text = text_matches(f.customer)
    if text is not None:
        where.append(text)
    if f.desire:
        where.append(_answered((Survey.DESIRE,), f.desire))
    if f.answer:
        where.append(_answered((Survey.QUOTE, Survey.CLOSE, Survey.END), f.answer))
    return where


def matching(f: DealFilter, columns: tuple[Any, ...] = _COLUMNS) -> Select[Any]:
    return (
        select(*columns)
        .select_from(Deal)
        .join(Customer, Customer.id == Deal.customer_id)
        .join(DealStatus, DealStatus.id == Deal.status_id)
        .outerjoin(User, User.id == Deal.host_id)
        .where(*conditions(f))
        .order_by(Deal.updated_at.desc(), Deal.id.desc())
    )


async def count(db: AsyncSession, f: DealFilter) -> int:
    query = matching(f, (Deal.id,)).order_by(None)
    return int(await db.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def find(db: AsyncSession, f: DealFilter, page: int = 1) -> tuple[list[DealRow], int]:
    """One page of matching deals (last changed first) and how many match."""
    n = await count(db, f)
    pages = max(1, -(-n // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = await db.execute(matching(f).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
    return [DealRow(*row) for row in rows], n


async def ids(db: AsyncSession, f: DealFilter) -> list[int]:
    return list(await db.scalars(matching(f, (Deal.id,))))


async def stream(
    sessions: async_sessionmaker[AsyncSession], f: DealFilter
) -> AsyncIterator[tuple[list[DealRow], dict[int, dict[Survey, list[str]]]]]:
    """Every matching deal in the list's order, ``EXPORT_CHUNK`` at a time, with their survey answers."""
    async with sessions() as db, sessions() as lookups:
        result = await (await db.connection()).stream(matching(f).execution_options(yield_per=EXPORT_CHUNK))
        async for partition in result.partitions(EXPORT_CHUNK):
            rows = [DealRow(*row) for row in partition]
            yield rows, await answers(lookups, [row.id for row in rows])


async def hosts(db: AsyncSession, org_id: int) -> list[tuple[int, str]]:
    """Everybody with a deal in the org, for the host filter."""
    with_deals = select(Deal.host_id).where(Deal.org_id == org_id).distinct().scalar_subquery()
    rows = await db.execute(
        select(User.id, User.display_name)
        .where(User.org_id == org_id, User.id.in_(with_deals))
        .order_by(User.display_name)
    )
    return [(user_id, name) for user_id, name in rows]
