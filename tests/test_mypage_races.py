"""マイページ races on SQLite and PostgreSQL, below the pages: a customer's second deletion request sent while
the first is still being written tells the admins nothing more (one open request), and a host's second click
on "leave this document" while the first is being written leaves it once instead of failing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deals.models import Customer
from documents.models import Document, DocumentStatus
from mypage import deletion, left
from mypage.models import DeletionRequest, LeftDocument
from store.models import Role
from web import accounts

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


async def _second_while_first_is_uncommitted(
    sessions: async_sessionmaker[AsyncSession], act: Callable[[AsyncSession], Coroutine[Any, Any, object]]
) -> object:
    """``act`` in one session, left uncommitted; the same ``act`` in a second session, which reads before the
    first commits and writes after; the second's result."""
    async with sessions() as first, sessions() as second:
        await act(first)
        racing: asyncio.Task[object] = asyncio.create_task(act(second))
        await asyncio.sleep(0.3)  # the second has read "nothing yet" and waits on the first's write
        await first.commit()
        result = await asyncio.wait_for(racing, 30)
        await second.commit()
        return result


@pytest.mark.timeout(90)
async def test_a_second_request_or_click_racing_the_first_keeps_one(
    migrated_sessions: async_sessionmaker[AsyncSession],
) -> None:
    sessions = migrated_sessions
    async with sessions.begin() as db:
        org = await accounts.create_org(db, "acme", "ACME")
        host = await accounts.add_user(db, org, "host@acme.example", "host", Role.HOST, "long-enough-1")
        customer = Customer(org_id=org.id, owner_id=host.id, name="山田")
        document = Document(org_id=org.id, owner_id=host.id, name="会社案内.pdf", pages=1, rendered=1)
        document.status = DocumentStatus.READY
        db.add_all([customer, document])
    customer_id, document_id, host_id = customer.id, document.id, host.id

    async def ask(db: AsyncSession) -> object:
        mine = await db.get(Customer, customer_id)
        assert mine is not None
        return await deletion.ask(db, mine, "退会します", NOW)

    async def leave(db: AsyncSession) -> object:
        mine = await db.get(Customer, customer_id)
        assert mine is not None
        await left.leave(db, mine, host_id, document_id, NOW)
        return None

    assert await _second_while_first_is_uncommitted(sessions, ask) is None  # nobody is told twice
    await _second_while_first_is_uncommitted(sessions, leave)  # no IntegrityError
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(DeletionRequest)) == 1
        assert await db.scalar(select(func.count()).select_from(LeftDocument)) == 1
        # Once handled, the customer may ask again.
        request_id = await db.scalar(select(DeletionRequest.id))
        assert request_id is not None
        assert await deletion.mark_handled(db, org.id, request_id, NOW)
        await db.commit()
        again = await ask(db)
        assert isinstance(again, DeletionRequest)
        await db.commit()
