"""Alembic environment: runs migrations over the async engine the app itself uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from store import all_models
from store.db import create_engine

target_metadata = all_models.metadata()


def do_run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # Batch mode rebuilds a table by copying it and dropping the original; with foreign keys on, SQLite's
        # DROP TABLE deletes the rows first, and ON DELETE CASCADE would empty every table that refers to it
        # (rebuilding orgs would delete users, rooms and meeting records). Off for the migration's length.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        compare_type=True,
        include_name=all_models.managed,  # autogenerate leaves the search index's own tables alone
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("tsunagu migrations run online only")
asyncio.run(run_async_migrations())
