"""Customers and deals on SQLite and PostgreSQL: meetings with one new number started at the same moment
make one customer (the unique index and the savepoint), merging moves meetings and deals, and a notice
claimed by two senders at once is sent by one of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import ManualClock
from deals import customers, notices, pipeline
from deals.mailer import Mailer, MailResult, MailStatus
from deals.models import Customer, Deal, OutboxMessage, OutboxStatus
from signaling.sms import OutboxGateway
from store.models import Role
from web import accounts

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class CountingMailer(Mailer):
    """Counts what it is asked to send and holds each send until released (to make the race real)."""

    name = "counting"
    sender = "test@tsunagu.invalid"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def send(self, message: object) -> MailResult:
        self.sent.append(str(message["Message-ID"]))  # type: ignore[index]
        self.started.set()
        await self.release.wait()
        return MailResult(MailStatus.SENT)


async def test_one_new_number_at_once_one_customer_and_one_send(
    migrated_sessions: async_sessionmaker[AsyncSession],
) -> None:
    sessions = migrated_sessions
    async with sessions.begin() as db:
        org = await accounts.create_org(db, "acme", "ACME")
        host = await accounts.add_user(db, org, "host@acme.example", "host", Role.HOST, "long-enough-1")
        org_id, host_id = org.id, host.id
    barrier = asyncio.Barrier(4)

    async def start() -> int:
        async with sessions.begin() as db:
            await barrier.wait()
            return (await customers.match_or_create(db, org_id, host_id, "+819012345678")).id

    made = await asyncio.wait_for(asyncio.gather(*(start() for _ in range(4))), 30)
    assert len(set(made)) == 1
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(Customer)) == 1

    async with sessions.begin() as db:
        customer = await db.get(Customer, made[0])
        assert customer is not None
        customer.email = "c@example.com"
        deal = await pipeline.open_deal(db, org_id, customer.id, host_id, "", NOW)
        quote = (await pipeline.statuses(db, org_id))[1]
        quote.email_body = "{customer_name}様"
        message = notices.queue(db, quote, customer, {"customer_name": "C"}, deal.id, "tsunagu.invalid")
        assert message is not None
        await db.flush()
        message_id = message.id
    mailer = CountingMailer()
    clock = ManualClock()
    racing = [
        asyncio.create_task(notices.deliver(sessions, message_id, mailer, OutboxGateway(), clock))
        for _ in range(3)
    ]
    await asyncio.wait_for(mailer.started.wait(), 30)
    # The other two senders try while the first is still sending: each finds the message claimed.
    while sum(task.done() for task in racing) < 2:
        pending = [task for task in racing if not task.done()]
        _, still = await asyncio.wait(pending, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert len(still) < len(pending), "a sender neither sent nor stood back within 30 s"
    mailer.release.set()
    results = await asyncio.wait_for(asyncio.gather(*racing), 30)
    assert results.count(OutboxStatus.SENT) == 1 and results.count(None) == 2
    assert len(mailer.sent) == 1
    async with sessions() as db:
        stored = await db.get(OutboxMessage, message_id)
        assert stored is not None and stored.status == OutboxStatus.SENT and stored.attempts == 1
        assert await db.scalar(select(func.count()).select_from(Deal)) == 1
