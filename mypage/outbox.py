"""The マイページ's messages (its link, one-time codes, deletion requests to admins) go through the deals'
outbox: by the customer's channel (deals.notices.route), kept with their status, delivered at most once
(deals.notices.deliver) after the transaction that made them commits."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from deals.models import Customer, OutboxMessage, OutboxStatus
from deals.notices import NO_CONTACT, route


def _row(org_id: int, channel: str, to: str, subject: str, body: str, domain: str) -> OutboxMessage:
    return OutboxMessage(
        org_id=org_id,
        deal_id=None,
        message_id=f"{uuid.uuid4().hex}@{domain}",
        channel=channel,
        to=to,
        subject=subject[:200],
        body=body,
        status=OutboxStatus.NO_CONTACT if channel == NO_CONTACT else OutboxStatus.PENDING,
    )


async def to_customer(
    db: AsyncSession, customer: Customer, subject: str, body: str, domain: str
) -> OutboxMessage:
    """A message to the customer by its channel (SMS carries the body alone); NO_CONTACT when it has none."""
    where = route(customer)
    row = _row(
        customer.org_id, where.channel, where.to, subject if where.channel == "email" else "", body, domain
    )
    db.add(row)
    await db.flush()
    return row


async def to_email(
    db: AsyncSession, org_id: int, address: str, subject: str, body: str, domain: str
) -> OutboxMessage:
    row = _row(org_id, "email", address, subject, body, domain)
    db.add(row)
    await db.flush()
    return row
