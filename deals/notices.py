"""Notices: the message a status change sends, by the customer's channel, kept in one outbox.

The channel (seed 002): the customer's preferred one when its address is there; none given → email; no
email → SMS to a mobile number; neither → nothing is sent and the outbox row says 未送信: 連絡先なし.

Delivery happens at most once per message. :func:`deliver` claims a message by moving it from ``pending``
or ``failed`` to ``sending`` in one conditional UPDATE, committed before anything is sent; only the claimer
sends, then marks it ``sent`` (or ``failed`` with the error). Two resends at once: one claims, the other
finds nothing to do. A crash between the two leaves ``sending``, which is never retried by itself (better
a notice missed and visible than one sent twice); the email's Message-ID is the row's, whatever the
attempt, so a receiving server can also drop a duplicate.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deals.mailer import Mailer, MailStatus
from deals.models import Channel, Customer, DealStatus, OutboxMessage, OutboxStatus
from signaling.models import SmsStatus
from signaling.phone import is_mobile
from signaling.sms import SmsGateway

NO_CONTACT = "none"
PLACEHOLDERS = ("customer_name", "host_name", "company", "link")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_RETRYABLE = (OutboxStatus.PENDING, OutboxStatus.FAILED)


@dataclass(frozen=True)
class Route:
    channel: str  # "email", "sms" or "none"
    to: str


def route(customer: Customer) -> Route:
    """Where a notice to ``customer`` goes (see the module docstring)."""
    email = customer.email
    mobile = customer.phone if customer.phone and is_mobile(customer.phone) else ""
    if customer.channel == Channel.SMS and mobile:
        return Route("sms", mobile)
    if email:
        return Route("email", email)
    if mobile:
        return Route("sms", mobile)
    return Route(NO_CONTACT, "")


def has_template(status: DealStatus) -> bool:
    return bool(status.sms_text.strip() or status.email_body.strip())


def fill(template: str, values: dict[str, str]) -> str:
    """``template`` with ``{customer_name}``, ``{host_name}``, ``{company}``, ``{link}`` replaced; any other
    brace is left as written (a template is text, never code: no str.format)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def queue(
    db: AsyncSession,
    status: DealStatus,
    customer: Customer,
    values: dict[str, str],
    deal_id: int,
    domain: str,
) -> OutboxMessage | None:
    """The notice of a change to ``status`` as a pending outbox row, or None when the status has none."""
    if not has_template(status):
        return None
    where = route(customer)
    if where.channel == "email":
        subject = fill(status.email_subject or status.name, values)
        body = fill(status.email_body or status.sms_text, values)
    else:
        subject, body = "", fill(status.sms_text or status.email_body, values)
    message = OutboxMessage(
        org_id=status.org_id,
        deal_id=deal_id,
        message_id=f"{uuid.uuid4().hex}@{domain}",
        channel=where.channel,
        to=where.to,
        subject=subject[:200],
        body=body,
        status=OutboxStatus.NO_CONTACT if where.channel == NO_CONTACT else OutboxStatus.PENDING,
    )
    db.add(message)
    return message


def _email(message: OutboxMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Message-ID"] = f"<{message.message_id}>"
    email.set_content(message.body)
    return email


async def deliver(
    sessions: async_sessionmaker[AsyncSession],
    outbox_id: int,
    mailer: Mailer,
    sms: SmsGateway,
    clock: Callable[[], float],
) -> OutboxStatus | None:
    """Send one pending or failed message, at most once (see the module docstring). Returns its new
    status, or None when it was not this call's to send (already sent, being sent, no contact)."""
    async with sessions.begin() as db:
        claimed = await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id, OutboxMessage.status.in_(_RETRYABLE))
            .values(status=OutboxStatus.SENDING, attempts=OutboxMessage.attempts + 1, error="")
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        message = await db.get(OutboxMessage, outbox_id)
        assert message is not None
        channel, to, body = message.channel, message.to, message.body
        email = _email(message, mailer.sender) if channel == "email" else None
    if email is not None:
        mailed = await mailer.send(email)
        status = {MailStatus.SENT: OutboxStatus.SENT, MailStatus.STORED: OutboxStatus.STORED}.get(
            mailed.status, OutboxStatus.FAILED
        )
        error = mailed.error
    else:
        texted = await sms.send(to, body)
        status = {SmsStatus.SENT: OutboxStatus.SENT, SmsStatus.STORED: OutboxStatus.STORED}.get(
            texted.status, OutboxStatus.FAILED
        )
        error = texted.error
    async with sessions.begin() as db:
        sent_at = datetime.fromtimestamp(clock(), UTC) if status != OutboxStatus.FAILED else None
        await db.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(status=status, error=error[:500], sent_at=sent_at)
        )
    return status


async def deal_messages(db: AsyncSession, deal_id: int) -> list[OutboxMessage]:
    rows = await db.scalars(
        select(OutboxMessage).where(OutboxMessage.deal_id == deal_id).order_by(OutboxMessage.id.desc())
    )
    return list(rows)


async def org_outbox(db: AsyncSession, org_id: int, limit: int = 200) -> list[OutboxMessage]:
    rows = await db.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.org_id == org_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    return list(rows)
