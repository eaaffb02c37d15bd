"""A deal's status pipeline, per org: the default statuses, changing a deal's status (one or many at once),
and the log of every change (who, when, from, to).

The org renames, adds, orders and retires statuses; a retired status keeps its deals but takes no new ones.
The defaults are made the first time an org's pipeline is asked for. Any pipeline is expressible, the seed
002's 申込受付中 → … → 支払い済み / キャンセル included (tests/test_deals.py builds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, InvalidInput, NotFound
from deals.customers import Scope
from deals.models import Deal, DealLog, DealStatus, Survey
from store.models import User

# 商談中 → 見積提示 → 成約 / 失注 / 保留 (seed 003: quote, close and end surveys on the three).
DEFAULTS: tuple[tuple[str, Survey], ...] = (
    ("商談中", Survey.NONE),
    ("見積提示", Survey.QUOTE),
    ("成約", Survey.CLOSE),
    ("失注", Survey.END),
    ("保留", Survey.NONE),
)
RETIRED_STATUS = N_("This status is retired: choose another one.")
NAME_NEEDED = N_("Enter the status name (up to 50 characters).")


async def statuses(db: AsyncSession, org_id: int, *, with_retired: bool = True) -> list[DealStatus]:
    """The org's pipeline in order, made from the defaults the first time."""
    found = list(
        await db.scalars(
            select(DealStatus).where(DealStatus.org_id == org_id).order_by(DealStatus.position, DealStatus.id)
        )
    )
    if not found:
        found = [
            DealStatus(org_id=org_id, name=name, position=i, survey=survey)
            for i, (name, survey) in enumerate(DEFAULTS)
        ]
        db.add_all(found)
        await db.flush()
    return found if with_retired else [s for s in found if not s.retired]


async def status(db: AsyncSession, org_id: int, status_id: int) -> DealStatus:
    found = await db.get(DealStatus, status_id)
    if found is None or found.org_id != org_id:
        raise NotFound()
    return found


async def add_status(db: AsyncSession, org_id: int, name: str, survey: Survey = Survey.NONE) -> DealStatus:
    name = name.strip()
    if not name or len(name) > 50:
        raise InvalidInput(NAME_NEEDED)
    existing = await statuses(db, org_id)
    made = DealStatus(org_id=org_id, name=name, position=len(existing), survey=survey)
    db.add(made)
    await db.flush()
    return made


async def reorder(db: AsyncSession, org_id: int, ids: list[int]) -> None:
    """Put the org's statuses in the order of ``ids`` (those not named keep their place after them)."""
    current = await statuses(db, org_id)
    by_id = {s.id: s for s in current}
    ordered = [by_id[i] for i in ids if i in by_id] + [s for s in current if s.id not in ids]
    for position, item in enumerate(ordered):
        item.position = position
    await db.flush()


def deal_visible(scope: Scope) -> ColumnElement[bool]:
    condition = Deal.org_id == scope.org_id
    return condition if scope.host_id is None else condition & (Deal.host_id == scope.host_id)


async def get_deal(db: AsyncSession, scope: Scope, deal_id: int) -> Deal:
    found = await db.scalar(select(Deal).where(Deal.id == deal_id, deal_visible(scope)))
    if found is None:
        raise NotFound()
    return found


async def open_deal(
    db: AsyncSession, org_id: int, customer_id: int, host_id: int | None, title: str, now: datetime
) -> Deal:
    """A new deal at the pipeline's first active status."""
    first = (await statuses(db, org_id, with_retired=False))[0]
    deal = Deal(
        org_id=org_id,
        customer_id=customer_id,
        host_id=host_id,
        status_id=first.id,
        title=title.strip()[:200],
        created_at=now,
        updated_at=now,
    )
    db.add(deal)
    await db.flush()
    return deal


@dataclass(frozen=True)
class Change:
    """A status change that happened (a deal already at ``to`` changes nothing and yields none)."""

    deal: Deal
    before: DealStatus
    after: DealStatus


async def change(
    db: AsyncSession, deals: list[Deal], to: DealStatus, user: User | str, now: datetime
) -> list[Change]:
    """Move each deal to ``to`` and log it; deals already there are left alone. ``to`` must be active and of
    the deals' org (the caller has checked the deals are the user's to change). ``user`` is who did it, or
    the name logged when nobody signed in did (a customer answering a quote)."""
    if to.retired:
        raise InvalidInput(RETIRED_STATUS)
    befores = {s.id: s for s in await statuses(db, to.org_id)}
    changes = []
    for deal in deals:
        if deal.org_id != to.org_id:
            raise NotFound()
        if deal.status_id == to.id:
            continue
        before = befores[deal.status_id]
        deal.status_id, deal.updated_at = to.id, now
        db.add(
            DealLog(
                deal_id=deal.id,
                user_id=user.id if isinstance(user, User) else None,
                user_name=user.display_name if isinstance(user, User) else user[:200],
                from_status=before.name,
                to_status=to.name,
                at=now,
            )
        )
        changes.append(Change(deal, before, to))
    await db.flush()
    return changes


async def deals_by_ids(db: AsyncSession, scope: Scope, ids: list[int]) -> list[Deal]:
    """The checked deals ``scope`` may change; any other id makes the whole request NotFound."""
    wanted = sorted(set(ids))
    found = list(
        await db.scalars(select(Deal).where(Deal.id.in_(wanted), deal_visible(scope)).order_by(Deal.id))
    )
    if len(found) != len(wanted):
        raise NotFound()
    return found


async def log(db: AsyncSession, deal_id: int) -> list[DealLog]:
    """The deal's status changes, newest first."""
    rows = await db.scalars(select(DealLog).where(DealLog.deal_id == deal_id).order_by(DealLog.id.desc()))
    return list(rows)


async def counts(db: AsyncSession, scope: Scope) -> dict[int, int]:
    """Deals per status id, for the pipeline's tabs."""
    rows = await db.execute(
        select(Deal.status_id, func.count()).where(deal_visible(scope)).group_by(Deal.status_id)
    )
    return {status_id: int(n) for status_id, n in rows}
