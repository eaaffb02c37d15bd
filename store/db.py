"""Engines and sessions for the one durable store, and what its errors mean to callers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator

import aiosqlite
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.errors import N_, Unavailable

# PostgreSQL SQLSTATEs that mean "try again": serialization failure, deadlock, lock not available, the
# server shutting down or restarting.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03"}


class StoreUnavailable(Unavailable):
    """The database is busy, locked or unreachable for now; the same call may succeed later."""

    code = "store_unavailable"
    message = N_("The service is temporarily unavailable.")


def transient(error: BaseException) -> bool:
    """Whether a database error may go away by itself (SQLite "database is locked", a lost connection)."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, exc.OperationalError | exc.InterfaceError):
            return True
        return getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
    return isinstance(error, exc.TimeoutError | ConnectionError | TimeoutError)


@contextlib.asynccontextmanager
async def unavailable_when_transient() -> AsyncIterator[None]:
    """Translate transient database errors into :class:`StoreUnavailable` (others pass through)."""
    try:
        yield
    except Exception as error:
        if transient(error):
            raise StoreUnavailable() from error
        raise


def async_url(url: str) -> str:
    """Accept the URLs people write (``postgresql://``, ``sqlite:///``) and pick the async drivers."""
    parsed = make_url(url)
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }
    if parsed.drivername in driver:
        parsed = parsed.set(drivername=driver[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


# Each aiosqlite connection runs on its own thread, which answers the event loop when a call finishes. A
# connection SQLAlchemy gives up on mid-call (a task cancelled again while its connection was being reset)
# is stopped without being waited for: its thread finishes the call later and, if the loop has closed by
# then, dies with "Event loop is closed" (seen in CI between two tests). :func:`dispose` waits for them.
_Workers = weakref.WeakKeyDictionary[threading.Thread, "weakref.ref[aiosqlite.Connection]"]
_SQLITE_THREADS: weakref.WeakKeyDictionary[Engine, _Workers] = weakref.WeakKeyDictionary()
SQLITE_THREADS_END_WITHIN_SECONDS = 5.0


def create_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        workers: _Workers = weakref.WeakKeyDictionary()
        _SQLITE_THREADS[engine.sync_engine] = workers

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            connection = dbapi_connection.driver_connection
            workers[connection._thread] = weakref.ref(connection)  # see _SQLITE_THREADS
            # WAL lets page reads go on while a write commits; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL syncs at checkpoints instead of every commit: safe against corruption, and a
            # commit costs microseconds instead of a disk flush (a power cut may lose the last moments).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's connections and, on SQLite, wait until every worker thread of a connection that
    was stopped has ended, so that its last answer reaches a loop that is still running."""
    await engine.dispose()
    workers = _SQLITE_THREADS.get(engine.sync_engine)
    for _ in range(int(SQLITE_THREADS_END_WITHIN_SECONDS / 0.01)):
        if workers is None or not any(_stopping(*worker) for worker in list(workers.items())):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)  # the answers they posted run now


def _stopping(thread: threading.Thread, connection: weakref.ref[aiosqlite.Connection]) -> bool:
    """A worker still running for a connection that was stopped or dropped (a connection still open, checked
    out by work that goes on, keeps its thread: that one is not waited for)."""
    alive = connection()
    return thread.is_alive() and (alive is None or not alive._running)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
