"""Documents left 処理中 by a node that died (acceptance 3c of issue 17): a lease in the database says which
node renders a document (documents/leases.py). Two nodes starting at the same moment take a dead node's
document once between them and render it; a live node's lease is left alone until it lapses; a document
already tried too often, or whose file is gone, is failed with a message saying what to do. On SQLite and on
PostgreSQL (the conditional UPDATE is what decides)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from core.clock import ManualClock
from documents import leases
from documents.errors import ProcessingInterrupted
from documents.library import DocumentJobs, create_document
from documents.models import Document, DocumentStatus
from store.migrate import upgrade
from store.models import Role
from tests.conftest import in_thread
from tests.harness import pdfs
from tests.helpers import seed_org
from web.services import services
from web.settings import Settings


@pytest.fixture
def settings(settings: Settings, any_database_url: str) -> Settings:
    in_thread(upgrade, any_database_url)
    return replace(settings, database_url=any_database_url)


async def left_processing(
    app: Starlette, org_id: int, owner_id: int, node: str, until: float, attempts: int, with_file: bool
) -> int:
    """A document some node took (``node`` until ``until``, ``attempts`` times) and never finished."""
    async with services(app).sessions.begin() as db:
        document = await create_document(
            db, org_id=org_id, owner_id=owner_id, name=f"{node}.pdf", org_wide=False, size=1
        )
        doc_id = document.id
        await db.execute(
            update(Document)
            .where(Document.id == doc_id)
            .values(lease_node=node, lease_until=until, attempts=attempts)
        )
    jobs: DocumentJobs = services(app).documents
    if with_file:
        await jobs.storage.storage.put(jobs.storage.original(org_id, doc_id), pdfs.text_pdf(pages=2))
    return doc_id


async def row(app: Starlette, doc_id: int) -> Document:
    async with services(app).sessions() as db:
        document = await db.get(Document, doc_id)
        assert document is not None
        return document


async def test_a_dead_nodes_document_is_taken_over_once_and_a_live_lease_is_not(
    app: Starlette, settings: Settings, clock: ManualClock
) -> None:
    seeded = await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    org_id, owner_id = seeded.org_id, seeded.users["host@acme.example"]
    now = clock()
    dead = await left_processing(app, org_id, owner_id, "node-dead", now - 1, 1, with_file=True)
    alive = await left_processing(app, org_id, owner_id, "node-alive", now + 20, 1, with_file=False)
    tried = await left_processing(app, org_id, owner_id, "node-dead", now - 1, leases.MAX_ATTEMPTS, True)
    storage = services(app).storage
    nodes = [
        DocumentJobs(services(app).sessions, replace(settings, node_id=node), storage, clock=clock)
        for node in ("node-b", "node-c")
    ]
    barrier = asyncio.Barrier(len(nodes))

    async def starting(jobs: DocumentJobs) -> list[int]:
        await barrier.wait()  # both nodes look at the same moment
        return await jobs.recover()

    try:
        taken = await asyncio.gather(*(starting(jobs) for jobs in nodes))
        # Each orphan is taken by exactly one node; the live node's document by none.
        assert sorted(taken[0] + taken[1]) == sorted([dead, tried]), taken
        for jobs in nodes:
            await jobs.idle()
        rendered = await row(app, dead)
        assert rendered.status == DocumentStatus.READY and rendered.pages == 2
        assert rendered.lease_node in ("node-b", "node-c") and rendered.attempts == 2
        winner = nodes[0] if dead in taken[0] else nodes[1]
        assert await jobs_keys(winner, org_id, dead)  # its pages are in storage
        # Taken too often (it may be what kills its nodes): failed with a clear message, not tried again.
        given_up = await row(app, tried)
        assert given_up.status == DocumentStatus.FAILED and "upload the file again" in given_up.error
        assert await jobs_keys(winner, org_id, tried) == []
        untouched = await row(app, alive)
        assert untouched.status == DocumentStatus.PROCESSING and untouched.lease_node == "node-alive"
        # A node that does not hold a lease (it stalled past it, and another took over) writes nothing: its
        # renewal fails, and so does what its job does when it ends in error.
        async with services(app).sessions.begin() as db:
            assert not await leases.renew(db, alive, "node-b", clock())
            assert not await leases.take(db, alive, "node-b", clock())
        await nodes[0]._fail(alive, org_id, ProcessingInterrupted())
        assert (await row(app, alive)).status == DocumentStatus.PROCESSING

        # Nothing is taken twice: a second look finds nothing.
        assert await asyncio.gather(*(jobs.recover() for jobs in nodes)) == [[], []]

        # The live node dies in turn: once its lease lapses, one node takes its document; its file is gone,
        # so it is failed with the message saying so.
        clock.now += leases.LEASE_SECONDS + 1
        barrier = asyncio.Barrier(len(nodes))
        taken = await asyncio.gather(*(starting(jobs) for jobs in nodes))
        assert sorted(taken[0] + taken[1]) == [alive]
        for jobs in nodes:
            await jobs.idle()
        damaged = await row(app, alive)
        assert damaged.status == DocumentStatus.FAILED and damaged.error
        assert damaged.lease_node in ("node-b", "node-c")
    finally:
        for jobs in nodes:
            await jobs.aclose()


async def jobs_keys(jobs: DocumentJobs, org_id: int, doc_id: int) -> list[str]:
    return await jobs.storage.storage.keys(jobs.storage.prefix(org_id, doc_id))
