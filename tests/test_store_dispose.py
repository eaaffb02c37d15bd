"""Closing an engine leaves no SQLite worker thread behind to answer a loop that has gone away."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import event, text

from store.db import create_engine, dispose


async def test_a_connection_given_up_mid_call_has_ended_its_thread_when_the_engine_is_disposed(
    tmp_path: Path,
) -> None:
    # What CI saw between two tests: a task cancelled twice, the second time while its connection was being
    # reset, makes SQLAlchemy stop the connection without waiting. Its thread finished the call after the
    # test's loop had closed and died with "Event loop is closed".
    engine = create_engine(f"sqlite:///{tmp_path / 'held.db'}")
    entered, release = threading.Event(), threading.Event()

    def hold() -> int:
        entered.set()
        release.wait(10)
        return 1

    @event.listens_for(engine.sync_engine, "connect")
    def _hold(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.create_function("hold", 0, hold)

    async def query() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT hold()"))

    before = set(threading.enumerate())
    task = asyncio.create_task(query())
    assert await asyncio.to_thread(entered.wait, 10)
    (worker,) = [new for new in set(threading.enumerate()) - before if "_connection_worker" in new.name]
    task.cancel()
    for _ in range(50):  # the cancelled query now waits, behind the held call, for its connection's reset
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done and task.cancelled()
    assert worker.is_alive()  # stopped, not waited for: the held call is still running

    asyncio.get_running_loop().call_later(0.2, release.set)
    await dispose(engine)
    assert release.is_set()
    assert not worker.is_alive()
