"""Tables of quotes and negotiation: the org's quote settings, quotes with their line items, the moves of a
negotiation, and the in-app notices a host reads. Money is integer yen everywhere (BigInteger: a sum of
1,000 rows of up to 999,999,999 yen times 99,999 fits)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, str_enum, utcnow


class TaxMode(enum.StrEnum):
    """How an org's unit prices carry consumption tax."""

    EXCLUSIVE = "exclusive"  # 税抜: tax is added to the sum (rounded down)
    INCLUSIVE = "inclusive"  # 税込: the sum includes tax; the tax part is shown (rounded down)
    NONE = "none"  # 非課税 / not shown


class Negotiation(enum.StrEnum):
    """Whether the customer may counter, and whether a manager approves the host's moves (有人)."""

    OFF = "off"
    AUTOMATIC = "automatic"  # 自動: the two sides deal directly
    STAFFED = "staffed"  # 有人: a host's move is held until a manager approves it


class QuoteSettings(Base):
    """One org's quote rules; an org without a row has the defaults."""

    __tablename__ = "quote_settings"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tax_mode: Mapped[TaxMode] = mapped_column(str_enum(TaxMode), default=TaxMode.EXCLUSIVE)
    tax_rate: Mapped[int] = mapped_column(Integer, default=10)  # percent
    valid_days: Mapped[int] = mapped_column(Integer, default=21)
    negotiation: Mapped[Negotiation] = mapped_column(str_enum(Negotiation), default=Negotiation.OFF)
    round_limit: Mapped[int] = mapped_column(Integer, default=5)
    # Shown on the customer's pages (an expired or withdrawn link included): phone, email, hours.
    contact: Mapped[str] = mapped_column(String(500), default="")


class QuoteState(enum.StrEnum):
    DRAFT = "draft"  # being written; no link
    SENT = "sent"  # the link works; the host may withdraw or revise
    WITHDRAWN = "withdrawn"  # the link shows the withdrawn page; may be revised and sent again
    NEGOTIATING = "negotiating"  # the customer countered: moves alternate
    ACCEPTED = "accepted"  # all or some items accepted (frozen)
    DECLINED = "declined"  # declined all (frozen)
    AGREED = "agreed"  # a negotiation ended with an accepted amount (frozen)
    FAILED = "failed"  # 不成立: declined or the round limit passed (frozen)


ANSWERED = (QuoteState.ACCEPTED, QuoteState.DECLINED, QuoteState.AGREED, QuoteState.FAILED)


class Quote(Base):
    """A deal's quote. ``version`` grows with every revision: an answer names the version it saw, so a
    customer never signs what the host changed since. Tax mode and rate are the org's at creation."""

    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[QuoteState] = mapped_column(str_enum(QuoteState), default=QuoteState.DRAFT)
    version: Mapped[int] = mapped_column(Integer, default=1)
    tax_mode: Mapped[TaxMode] = mapped_column(str_enum(TaxMode), default=TaxMode.EXCLUSIVE)
    tax_rate: Mapped[int] = mapped_column(Integer, default=10)
    negotiation: Mapped[Negotiation] = mapped_column(str_enum(Negotiation), default=Negotiation.OFF)
    round_limit: Mapped[int] = mapped_column(Integer, default=5)
    token: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The answer: the total agreed (items accepted, or the negotiated amount) and the typed signature.
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    signer_name: Mapped[str] = mapped_column(String(100), default="")
    signer_ip: Mapped[str] = mapped_column(String(64), default="")
    signer_agent: Mapped[str] = mapped_column(String(500), default="")
    # The numbers each side gave for this negotiation's SMS notices.
    customer_phone: Mapped[str] = mapped_column(String(20), default="")
    host_phone: Mapped[str] = mapped_column(String(20), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuoteItem(Base):
    """One line: name, quantity, unit price (integer yen), grade and notes; ``accepted`` once answered."""

    __tablename__ = "quote_items"
    # An id is never given again (SQLite would reuse a deleted last one): an old exported sheet must not
    # name a newer item.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[int] = mapped_column(BigInteger, default=0)
    grade: Mapped[str] = mapped_column(String(50), default="")
    notes: Mapped[str] = mapped_column(String(500), default="")
    accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class Side(enum.StrEnum):
    CUSTOMER = "customer"
    HOST = "host"


class MoveKind(enum.StrEnum):
    COUNTER = "counter"  # a new amount
    ACCEPT = "accept"  # the other side's last amount is agreed
    DECLINE = "decline"  # no agreement: 不成立
    CLOSED = "closed"  # the round limit passed: 不成立 (written by the rule, not a person)


class MoveState(enum.StrEnum):
    HELD = "held"  # 有人: waiting for a manager's approval; the customer has not seen it
    SENT = "sent"


class QuoteMove(Base):
    """One move of a negotiation, never changed once sent (a held move is approved once). ``seq`` is the
    move's place: two answers to the same move race for one ``seq`` and the unique key lets one win."""

    __tablename__ = "quote_moves"
    __table_args__ = (UniqueConstraint("quote_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=0)  # amounts offered so far, this one included
    side: Mapped[Side] = mapped_column(str_enum(Side))
    kind: Mapped[MoveKind] = mapped_column(str_enum(MoveKind))
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    state: Mapped[MoveState] = mapped_column(str_enum(MoveState), default=MoveState.SENT)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    approved_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QuoteEvent(enum.StrEnum):
    """What a host (or, for a held move, the managers) is told in the app."""

    ACCEPTED = "accepted"  # the customer accepted all or some items
    DECLINED = "declined"  # the customer declined all
    COUNTERED = "countered"  # the customer offered an amount
    AGREED = "agreed"  # an amount was agreed
    FAILED = "failed"  # 不成立
    HELD = "held"  # a host's move waits for a manager's approval
    APPROVED = "approved"  # a manager approved the host's move: it was sent


class QuoteNotice(Base):
    """One in-app notice for one user (``amount`` in yen where the event has one)."""

    __tablename__ = "quote_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"), index=True)
    event: Mapped[QuoteEvent] = mapped_column(str_enum(QuoteEvent))
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
