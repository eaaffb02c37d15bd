"""Negotiation over a sent quote (seeds 000/001, アライ自動商談): the customer counters with a total, the
host answers with accept, decline or a new amount, and the turns alternate up to the round limit.

The rule is a pure function, :func:`decide`: the moves so far, who moves, what, at which ``now`` in; the
move to log and its effects out (the quote's new state, who is told what). The I/O shell is
:func:`play`, which claims the quote's ``version`` with one conditional UPDATE first (of two answers to the
same move exactly one wins; the other gets :class:`deals.quotes.QuoteAnswered`), then writes the move.

- A round is one amount offered; the quote's own total is round 0. A counter past ``round_limit`` is
  refused (:class:`RoundLimitReached`): at the last round the other side may only accept or decline, and
  a decline closes the negotiation as 不成立 (``failed``) with both sides told.
- 有人 (staffed): the host's move is logged ``held``, nothing is announced and the quote does not change
  until a manager approves it (:func:`approve`); the customer's moves are never held.
- Every move is immutable once sent; amounts are integer yen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, Conflict, InvalidInput, NotFound
from deals.quote_models import (
    ANSWERED,
    MoveKind,
    MoveState,
    Negotiation,
    Quote,
    QuoteEvent,
    QuoteMove,
    QuoteState,
    Side,
)
from deals.quotes import QuoteAnswered, QuoteNotOpen, QuoteRevised, expired

MAX_AMOUNT = 99_999_999_999


class RoundLimitReached(Conflict):
    code = "round_limit"
    message = N_("This is the last round: accept or decline the amount.")


class NotYourTurn(Conflict):
    code = "not_your_turn"
    message = N_("It is the other side's turn.")


class NegotiationOff(Conflict):
    code = "negotiation_off"
    message = N_("This quote cannot be negotiated.")


class BadAmount(InvalidInput):
    code = "bad_amount"
    message = N_("Enter the amount in yen as a whole number (1 or more).")


def parse_amount(text: str) -> int:
    """A total as people type it: 120000, 120,000, １２０，０００円 — a positive integer of yen."""
    cleaned = text.strip().translate(str.maketrans("０１２３４５６７８９，", "0123456789,"))
    cleaned = cleaned.removesuffix("円").replace(",", "").strip()
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > 11:
        raise BadAmount()
    amount = int(cleaned)
    if not 1 <= amount <= MAX_AMOUNT:
        raise BadAmount()
    return amount


@dataclass(frozen=True)
class Position:
    """Where a negotiation stands, read from its moves."""

    rounds: int  # amounts offered by counters so far
    amount: int | None  # the last amount on the table
    waiting_for: Side | None  # who moves next; None: closed, or a host's move is held
    held: QuoteMove | None


def position(quote: Quote, moves: Sequence[QuoteMove]) -> Position:
    sent = [m for m in moves if m.state == MoveState.SENT]
    held = next((m for m in moves if m.state == MoveState.HELD), None)
    counters = [m for m in sent if m.kind == MoveKind.COUNTER]
    last = counters[-1] if counters else None
    if quote.state == QuoteState.SENT:
        waiting: Side | None = Side.CUSTOMER
    elif quote.state == QuoteState.NEGOTIATING and held is None and last is not None:
        waiting = Side.HOST if last.side == Side.CUSTOMER else Side.CUSTOMER
    else:
        waiting = None
    return Position(len(counters), last.amount if last else None, waiting, held)


@dataclass(frozen=True)
class Told:
    """One side to tell about a move (in the app for the host, by SMS to the negotiation's numbers)."""

    side: Side
    event: QuoteEvent
    amount: int | None


@dataclass(frozen=True)
class Decision:
    """The move to log and what it does."""

    kind: MoveKind
    amount: int | None
    round: int
    held: bool
    state: QuoteState | None  # the quote's new state (None: unchanged)
    told: list[Told] = field(default_factory=list)


def effects(side: Side, kind: MoveKind, amount: int | None) -> tuple[QuoteState, list[Told]]:
    """What a sent move does: the quote's new state and who is told what."""
    other = Side.HOST if side == Side.CUSTOMER else Side.CUSTOMER
    if kind == MoveKind.COUNTER:
        event = QuoteEvent.COUNTERED
        return QuoteState.NEGOTIATING, [Told(other, event, amount)]
    if kind == MoveKind.ACCEPT:
        return QuoteState.AGREED, [
            Told(Side.HOST, QuoteEvent.AGREED, amount),
            Told(Side.CUSTOMER, QuoteEvent.AGREED, amount),
        ]
    return QuoteState.FAILED, [
        Told(Side.HOST, QuoteEvent.FAILED, None),
        Told(Side.CUSTOMER, QuoteEvent.FAILED, None),
    ]


def decide(
    quote: Quote, moves: Sequence[QuoteMove], side: Side, kind: MoveKind, amount: int | None, now: datetime
) -> Decision:
    """Check a move against the rules (module docstring) and say what it does."""
    if quote.negotiation == Negotiation.OFF:
        raise NegotiationOff()
    if quote.state in ANSWERED:
        raise QuoteAnswered()
    if quote.state not in (QuoteState.SENT, QuoteState.NEGOTIATING) or (
        quote.state == QuoteState.SENT and expired(quote, now)
    ):
        raise QuoteNotOpen()
    at = position(quote, moves)
    if at.waiting_for != side:
        raise NotYourTurn()
    if quote.state == QuoteState.SENT and kind != MoveKind.COUNTER:
        raise InvalidInput()  # accepting or declining the quote itself is deals.quotes' answer
    rounds = at.rounds
    if kind == MoveKind.COUNTER:
        if amount is None:
            raise BadAmount()
        if rounds >= quote.round_limit:
            raise RoundLimitReached()
        rounds += 1
    else:
        amount = at.amount if kind == MoveKind.ACCEPT else None
    held = side == Side.HOST and quote.negotiation == Negotiation.STAFFED
    if held:
        return Decision(kind, amount, rounds, True, None, [Told(Side.HOST, QuoteEvent.HELD, amount)])
    state, told = effects(side, kind, amount)
    return Decision(kind, amount, rounds, False, state, told)


async def moves_of(db: AsyncSession, quote_id: int) -> list[QuoteMove]:
    rows = await db.scalars(select(QuoteMove).where(QuoteMove.quote_id == quote_id).order_by(QuoteMove.seq))
    return list(rows)


async def _claim(db: AsyncSession, quote_id: int, seen_version: int) -> Quote:
    """Bump the quote's version if it is still ``seen_version`` (else someone moved first). The first write
    of the transaction: on SQLite the UPDATE waits for the write lock instead of failing a stale read."""
    claimed = await db.execute(
        update(Quote)
        .where(Quote.id == quote_id, Quote.version == seen_version)
        .values(version=Quote.version + 1)
    )
    quote = await db.get(Quote, quote_id, populate_existing=True)
    if quote is None:
        raise NotFound()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise QuoteRevised() if quote.state == QuoteState.SENT else QuoteAnswered()
    return quote


async def play(
    db: AsyncSession,
    quote_id: int,
    seen_version: int,
    side: Side,
    kind: MoveKind,
    amount: int | None,
    user_id: int | None,
    now: datetime,
) -> tuple[Quote, QuoteMove, Decision]:
    """Make a move on the quote as it was at ``seen_version`` (module docstring). A refused move raises,
    and the caller's transaction rolls the claim back; the caller commits, then announces
    ``Decision.told``."""
    quote = await _claim(db, quote_id, seen_version)
    moves = await moves_of(db, quote_id)
    decision = decide(quote, moves, side, kind, amount, now)
    if decision.state is not None:
        quote.state = decision.state
    move = QuoteMove(
        quote_id=quote_id,
        seq=len(moves) + 1,
        round=decision.round,
        side=side,
        kind=decision.kind,
        amount=decision.amount,
        state=MoveState.HELD if decision.held else MoveState.SENT,
        user_id=user_id,
        at=now,
    )
    db.add(move)
    await db.flush()
    return quote, move, decision


async def approve(db: AsyncSession, quote: Quote, move_id: int, manager_id: int, now: datetime) -> Decision:
    """A manager sends a held host move: it takes effect now (its time stays the host's)."""
    move = await db.get(QuoteMove, move_id)
    if move is None or move.quote_id != quote.id:
        raise NotFound()
    claimed = await db.execute(
        update(QuoteMove)
        .where(QuoteMove.id == move_id, QuoteMove.state == MoveState.HELD)
        .values(state=MoveState.SENT, approved_by=manager_id)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(N_("This move has already been approved."))
    state, told = effects(Side.HOST, move.kind, move.amount)
    quote.state, quote.version = state, quote.version + 1
    await db.flush()
    return Decision(move.kind, move.amount, move.round, False, state, told)
