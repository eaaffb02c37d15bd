"""Quotes: a deal's line items in integer yen with the org's tax handling, sent by an expiring link, revised
or withdrawn until the customer answers, frozen once answered.

States (:class:`QuoteState`): draft → sent ⇄ withdrawn; sent → accepted / declined (the customer's answer)
or negotiating (a counter: deals.negotiation) → agreed / failed. Editing is allowed in draft, sent and
withdrawn; every edit bumps ``version``. The customer's answer is claimed by one conditional UPDATE (state
still ``sent``, ``version`` the one the customer saw, link not expired): of two answers at once exactly one
changes a row; the other learns the quote was already answered (or revised) and nothing of it is kept.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utc
from core.errors import N_, Conflict, InvalidInput, NotFound
from deals import pipeline
from deals.customers import Scope
from deals.models import Deal, DealStatus, Survey
from deals.quote_models import (
    ANSWERED,
    Quote,
    QuoteItem,
    QuoteSettings,
    QuoteState,
    TaxMode,
)

MAX_ITEMS = 1000
MAX_QUANTITY = 99_999
MAX_UNIT_PRICE = 999_999_999
MAX_VALID_DAYS = 365
EDITABLE = (QuoteState.DRAFT, QuoteState.SENT, QuoteState.WITHDRAWN)
# The pipeline's statuses a quote moves a deal to, by their default names (or the survey the org gave them).
PRESENTED, WON, LOST = "見積提示", "成約", "失注"
_STATUS_SURVEY = {PRESENTED: Survey.QUOTE, WON: Survey.CLOSE, LOST: Survey.END}


class QuoteFrozen(Conflict):
    code = "quote_frozen"
    message = N_("This quote has been answered and can no longer be changed. Make a new quote.")


class QuoteAnswered(Conflict):
    code = "quote_answered"
    message = N_("This quote has already been answered.")


class QuoteRevised(Conflict):
    code = "quote_revised"
    message = N_("The quote was changed after you opened it. Please check it again.")


class QuoteNotOpen(Conflict):
    code = "quote_not_open"
    message = N_("This quote can no longer be answered.")


class NoItems(InvalidInput):
    code = "quote_no_items"
    message = N_("Add at least one item before sending the quote.")


class NothingChosen(InvalidInput):
    code = "quote_nothing_chosen"
    message = N_("Choose at least one item, or decline the quote.")


class SignatureNeeded(InvalidInput):
    code = "signature_needed"
    message = N_("Type your name to sign (up to 100 characters).")


@dataclass(frozen=True)
class ItemInput:
    """One line as typed or imported, already checked (sheets.check_rows, or :func:`check_item`)."""

    id: int | None
    name: str
    quantity: int
    unit_price: int
    grade: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Totals:
    subtotal: int
    tax: int  # the tax added (exclusive) or included (inclusive); 0 without tax
    total: int  # what the customer pays


def totals(lines: Sequence[tuple[int, int]], mode: TaxMode, rate: int) -> Totals:
    """Totals of (quantity, unit price) lines: integer yen, tax rounded down (端数切り捨て)."""
    subtotal = sum(quantity * price for quantity, price in lines)
    if mode == TaxMode.EXCLUSIVE:
        tax = subtotal * rate // 100
        return Totals(subtotal, tax, subtotal + tax)
    if mode == TaxMode.INCLUSIVE:
        return Totals(subtotal, subtotal * rate // (100 + rate), subtotal)
    return Totals(subtotal, 0, subtotal)


def quote_totals(quote: Quote, items: Sequence[QuoteItem], only: set[int] | None = None) -> Totals:
    chosen = [(i.quantity, i.unit_price) for i in items if only is None or i.id in only]
    return totals(chosen, quote.tax_mode, quote.tax_rate)


async def settings_of(db: AsyncSession, org_id: int) -> QuoteSettings:
    """The org's quote settings (the defaults, unsaved, when the org has none yet)."""
    found = await db.get(QuoteSettings, org_id)
    if found is None:
        found = QuoteSettings(org_id=org_id)
        for column in QuoteSettings.__table__.columns:  # defaults filled in now, not at flush
            if column.default is not None and getattr(found, column.key) is None:
                setattr(found, column.key, column.default.arg)
    return found


async def new_quote(db: AsyncSession, deal: Deal, author_id: int | None, now: datetime) -> Quote:
    rules = await settings_of(db, deal.org_id)
    quote = Quote(
        org_id=deal.org_id,
        deal_id=deal.id,
        author_id=author_id,
        title=deal.title,
        state=QuoteState.DRAFT,
        version=1,
        tax_mode=rules.tax_mode,
        tax_rate=rules.tax_rate,
        negotiation=rules.negotiation,
        round_limit=rules.round_limit,
        created_at=now,
    )
    db.add(quote)
    await db.flush()
    return quote


async def get_quote(db: AsyncSession, scope: Scope, quote_id: int) -> tuple[Quote, Deal]:
    """The quote and its deal, when ``scope`` may see the deal (else NotFound, another org's included)."""
    quote = await db.get(Quote, quote_id)
    if quote is None or quote.org_id != scope.org_id:
        raise NotFound()
    return quote, await pipeline.get_deal(db, scope, quote.deal_id)


async def by_token(db: AsyncSession, token: str) -> Quote:
    if not token or len(token) > 64:
        raise NotFound()
    found = await db.scalar(select(Quote).where(Quote.token == token))
    if found is None:
        raise NotFound()
    return found


async def items_of(db: AsyncSession, quote_id: int) -> list[QuoteItem]:
    rows = await db.scalars(
        select(QuoteItem).where(QuoteItem.quote_id == quote_id).order_by(QuoteItem.position, QuoteItem.id)
    )
    return list(rows)


async def deal_quotes(db: AsyncSession, deal_id: int) -> list[Quote]:
    rows = await db.scalars(select(Quote).where(Quote.deal_id == deal_id).order_by(Quote.id.desc()))
    return list(rows)


def editable(quote: Quote) -> None:
    if quote.state not in EDITABLE:
        raise QuoteFrozen()


async def _claim_for_host(
    db: AsyncSession, quote: Quote, states: Sequence[QuoteState], **values: object
) -> None:
    """The host's change, only if the quote is still in one of ``states`` at the version the host read: a
    customer answering in between wins (their signed answer is never overwritten), and this raises. One
    conditional UPDATE, as the customer's answer is claimed; ``quote`` is refreshed from the row after."""
    claimed = await db.execute(
        update(Quote)
        .where(Quote.id == quote.id, Quote.version == quote.version, Quote.state.in_(states))
        .values(version=Quote.version + 1, **values)
    )
    await db.refresh(quote)
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise QuoteFrozen() if quote.state in (*ANSWERED, QuoteState.NEGOTIATING) else QuoteRevised()


async def replace_items(db: AsyncSession, quote: Quote, lines: Sequence[ItemInput]) -> None:
    """Make the quote's items exactly ``lines``: a line with an id updates that item (it keeps its id),
    a line without one is new, an item not named is removed. An id not of this quote is refused first."""
    editable(quote)
    await _claim_for_host(db, quote, EDITABLE)  # first: the items change only under the claimed version
    current = {item.id: item for item in await items_of(db, quote.id)}
    unknown = [line.id for line in lines if line.id is not None and line.id not in current]
    if unknown:
        raise InvalidInput(N_("Item {id} is not in this quote."), id=unknown[0])
    kept = {line.id for line in lines if line.id is not None}
    gone = [item_id for item_id in current if item_id not in kept]
    if gone:
        await db.execute(delete(QuoteItem).where(QuoteItem.id.in_(gone)))
    for position, line in enumerate(lines):
        item = current[line.id] if line.id is not None else QuoteItem(quote_id=quote.id)
        item.position, item.name, item.quantity, item.unit_price = (
            position,
            line.name,
            line.quantity,
            line.unit_price,
        )
        item.grade, item.notes = line.grade, line.notes
        if line.id is None:
            db.add(item)
    await db.flush()


async def send(db: AsyncSession, quote: Quote, now: datetime, valid_days: int) -> str:
    """Open the link (the same one when sent again after a withdrawal) for ``valid_days``; its token."""
    if quote.state not in (QuoteState.DRAFT, QuoteState.WITHDRAWN):
        raise QuoteFrozen() if quote.state in ANSWERED else QuoteNotOpen()
    if not await items_of(db, quote.id):
        raise NoItems()
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise InvalidInput(N_("The link's validity is 1 to {max} days."), max=MAX_VALID_DAYS)
    token = quote.token or secrets.token_urlsafe(16)  # sent again after a withdrawal: the same link
    opened = {"state": QuoteState.SENT, "sent_at": now, "expires_at": now + timedelta(days=valid_days)}
    await _claim_for_host(db, quote, (QuoteState.DRAFT, QuoteState.WITHDRAWN), token=token, **opened)
    return token


async def withdraw(db: AsyncSession, quote: Quote) -> None:
    if quote.state != QuoteState.SENT:
        raise QuoteFrozen() if quote.state in ANSWERED else QuoteNotOpen()
    await _claim_for_host(db, quote, (QuoteState.SENT,), state=QuoteState.WITHDRAWN)


def expired(quote: Quote, now: datetime) -> bool:
    return quote.expires_at is not None and utc(quote.expires_at) <= now


@dataclass(frozen=True)
class Signature:
    name: str
    ip: str
    agent: str

    @classmethod
    def typed(cls, name: str, ip: str, agent: str) -> Signature:
        name = " ".join(name.split())
        if not name or len(name) > 100:
            raise SignatureNeeded()
        return cls(name, ip[:64], agent[:500])


async def claim_answer(
    db: AsyncSession,
    quote_id: int,
    seen_version: int,
    to: QuoteState,
    total: int | None,
    signature: Signature,
    now: datetime,
) -> None:
    """Answer the quote if it is still the one the customer saw (module docstring). Call it first in its
    transaction: on SQLite the UPDATE then waits for the lock instead of failing on a stale snapshot."""
    claimed = await db.execute(
        update(Quote)
        .where(
            Quote.id == quote_id,
            Quote.state == QuoteState.SENT,
            Quote.version == seen_version,
            Quote.expires_at > now,
        )
        .values(
            state=to,
            version=Quote.version + 1,
            answered_at=now,
            accepted_total=total,
            signer_name=signature.name,
            signer_ip=signature.ip,
            signer_agent=signature.agent,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        current = await db.get(Quote, quote_id, populate_existing=True)
        if current is None:
            raise NotFound()
        if current.state == QuoteState.SENT and current.version != seen_version and not expired(current, now):
            raise QuoteRevised()
        raise QuoteAnswered() if current.state in (*ANSWERED, QuoteState.NEGOTIATING) else QuoteNotOpen()


async def mark_items(db: AsyncSession, quote_id: int, accepted: set[int]) -> None:
    for item in await items_of(db, quote_id):
        item.accepted = item.id in accepted
    await db.flush()


async def status_named(db: AsyncSession, org_id: int, name: str) -> DealStatus | None:
    """The org's active status for ``name`` (見積提示, 成約, 失注): by name, else by its survey."""
    active = await pipeline.statuses(db, org_id, with_retired=False)
    return next((s for s in active if s.name == name), None) or next(
        (s for s in active if s.survey == _STATUS_SURVEY[name]), None
    )
