"""Tables owned by deals: customers, the meetings they had, deals, the org's pipeline, the status log,
message templates, the outbox of notices, and survey choices and answers."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, str_enum, utcnow


class Channel(enum.StrEnum):
    """How a customer wants notices: ``unset`` means not given (then email, else SMS: deals.notices)."""

    UNSET = "unset"
    EMAIL = "email"
    SMS = "sms"


class Customer(Base):
    """One person (or company contact) across meetings and deals. ``phone`` is E.164 (signaling.phone)."""

    __tablename__ = "customers"
    # One customer per number in an org (a number's meetings gather on one page, even when two meetings
    # start at the same moment); customers without a number are many.
    __table_args__ = (
        Index(
            "ix_customers_org_phone",
            "org_id",
            "phone",
            unique=True,
            sqlite_where=text("phone <> ''"),
            postgresql_where=text("phone <> ''"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    # The host who met the customer first: hosts see their own customers unless the org shares them.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    reading: Mapped[str] = mapped_column(String(100), default="")  # ふりがな
    company: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    channel: Mapped[Channel] = mapped_column(str_enum(Channel), default=Channel.UNSET)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CustomerMeeting(Base):
    """A meeting record belongs to (at most) one customer."""

    __tablename__ = "customer_meetings"

    record_id: Mapped[int] = mapped_column(
        ForeignKey("meeting_records.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)


class Survey(enum.StrEnum):
    """Which survey a status asks for (seed 003: 見積り / 成約 / 終了 アンケート); desire flags are asked
    with any of them."""

    NONE = "none"
    QUOTE = "quote"
    CLOSE = "close"
    END = "end"
    DESIRE = "desire"


class DealStatus(Base):
    """One status of an org's pipeline, in ``position`` order. A retired status takes no new deals and
    keeps the ones it has."""

    __tablename__ = "deal_statuses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(Integer, default=0)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    survey: Mapped[Survey] = mapped_column(str_enum(Survey), default=Survey.NONE)
    # The notice a change to this status sends; all empty: nothing is sent (the page says so first).
    sms_text: Mapped[str] = mapped_column(Text, default="")
    email_subject: Mapped[str] = mapped_column(String(200), default="")
    email_body: Mapped[str] = mapped_column(Text, default="")


class Deal(Base):
    """A sale: one customer, one host, one status of the org's pipeline."""

    __tablename__ = "deals"
    __table_args__ = (Index("ix_deals_org_status", "org_id", "status_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    status_id: Mapped[int] = mapped_column(ForeignKey("deal_statuses.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DealLog(Base):
    """One status change: who, when, from, to (names as they were: the log outlives renames)."""

    __tablename__ = "deal_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    user_name: Mapped[str] = mapped_column(String(200))
    from_status: Mapped[str] = mapped_column(String(50))
    to_status: Mapped[str] = mapped_column(String(50))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # made with the status change, not yet tried
    SENDING = "sending"  # claimed by one sender: nobody else may send it
    SENT = "sent"  # accepted by the SMTP server or the SMS gateway
    STORED = "stored"  # kept only (no SMTP server configured / SMS outbox gateway)
    FAILED = "failed"  # refused or unreachable; ``error`` says why; may be resent
    NO_CONTACT = "no_contact"  # 未送信: 連絡先なし — neither an email address nor a mobile number


class OutboxMessage(Base):
    """Every notice, by whichever channel, kept with its status and error. ``message_id`` is the email's
    Message-ID (and the SMS's idempotency key): one per notice, whatever the number of attempts."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="SET NULL"), nullable=True, index=True
    )
    message_id: Mapped[str] = mapped_column(String(120), unique=True)
    channel: Mapped[str] = mapped_column(String(8))  # "email", "sms" or "none"
    to: Mapped[str] = mapped_column(String(254), default="")
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[OutboxStatus] = mapped_column(str_enum(OutboxStatus), default=OutboxStatus.PENDING)
    error: Mapped[str] = mapped_column(String(500), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SurveyChoice(Base):
    """One choice of a survey's fixed list, editable per org (retired choices keep their answers)."""

    __tablename__ = "survey_choices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    survey: Mapped[Survey] = mapped_column(str_enum(Survey))
    label: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)


class SurveyAnswer(Base):
    """A choice picked for a deal (the label as it was, so renaming a choice keeps old answers readable)."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("deal_id", "survey", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    survey: Mapped[Survey] = mapped_column(str_enum(Survey))
    label: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
