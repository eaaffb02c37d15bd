"""Engines and sessions for the one durable store, and what its errors mean to callers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
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


def create_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
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


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
