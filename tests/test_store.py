"""The durable store on SQLite and PostgreSQL: migrations from empty, drift, and org-scoped queries."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.errors import Conflict, InvalidInput, NotFound
from store import all_models
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import Role
from web import accounts


async def _migrated(url: str):  # type: ignore[no-untyped-def]
    await asyncio.to_thread(upgrade, url)
    return create_engine(url)


async def test_upgrade_from_empty_creates_the_schema(any_database_url: str) -> None:
    engine = await _migrated(any_database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert {"orgs", "users", "alembic_version"} <= set(tables)
        # Upgrading again is a no-op, as `make run` does on every start.
        await asyncio.to_thread(upgrade, any_database_url)
    finally:
        await engine.dispose()


async def test_models_and_migrations_do_not_drift(any_database_url: str) -> None:
    engine = await _migrated(any_database_url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):  # type: ignore[no-untyped-def]
                context = MigrationContext.configure(
                    sync_conn, opts={"compare_type": True, "include_name": all_models.managed}
                )
                return compare_metadata(context, all_models.metadata())

            differences = await conn.run_sync(diff)
        assert differences == [], f"models and migrations differ; write a migration: {differences}"
    finally:
        await engine.dispose()


async def test_accounts_are_scoped_to_their_org(any_database_url: str) -> None:
    engine = await _migrated(any_database_url)
    sessions = session_factory(engine)
    try:
        async with sessions.begin() as db:
            a = await accounts.create_org(db, "org-a", "A社")
            b = await accounts.create_org(db, "org-b", "B社")
            alice = await accounts.add_user(db, a, "Alice@A.example", "Alice", Role.HOST, "long-enough-1")
            bob = await accounts.add_user(db, b, "bob@b.example", "Bob", "manager", "long-enough-2")
        async with sessions.begin() as db:
            assert [u.email for u in await accounts.org_users(db, a.id)] == ["alice@a.example"]
            assert (await accounts.org_user(db, b.id, bob.id)).display_name == "Bob"
            with pytest.raises(NotFound):
                await accounts.org_user(db, a.id, bob.id)
            assert await accounts.authenticate(db, "alice@a.example", "long-enough-1") is not None
            assert await accounts.authenticate(db, "alice@a.example", "wrong") is None
        async with sessions.begin() as db:
            with pytest.raises(Conflict):
                await accounts.add_user(db, b, "alice@a.example", "dup", Role.HOST, "long-enough-3")
        async with sessions.begin() as db:
            with pytest.raises(Conflict):
                await accounts.create_org(db, "org-a", "again")
        async with sessions.begin() as db:
            for bad in (
                ("not-an-email", Role.HOST, "long-enough-4"),
                ("c@a.example", "root", "long-enough-4"),
                ("c@a.example", Role.HOST, "short"),
            ):
                with pytest.raises(InvalidInput):
                    await accounts.add_user(db, a, bad[0], "x", bad[1], bad[2])
            stored = await accounts.org_user(db, a.id, alice.id)
            assert stored.password_hash.startswith("$argon2id$")
    finally:
        await engine.dispose()


async def test_upgrading_keeps_the_rows_that_refer_to_a_rebuilt_table(any_database_url: str) -> None:
    """SQLite rebuilds a table to change it (batch mode); with foreign keys on, dropping the old orgs table
    would cascade into users and everything else. Migrations run with them off (store/migrations/env.py)."""
    from sqlalchemy import text

    await asyncio.to_thread(upgrade, any_database_url, "0001")
    engine = create_engine(any_database_url)
    try:
        async with engine.begin() as connection:
            org = "INSERT INTO orgs (slug, name, created_at) VALUES ('a', 'A', '2026-01-01')"
            await connection.execute(text(org))
            await connection.execute(
                text(
                    "INSERT INTO users (org_id, email, display_name, role, password_hash, is_active, locale,"
                    " session_version, created_at) VALUES (1, 'a@a.example', 'a', 'host', 'x', true, '', 1,"
                    " '2026-01-01')"
                )
            )
        await asyncio.to_thread(upgrade, any_database_url)  # 0002 and 0004 rebuild orgs on SQLite
        async with engine.connect() as connection:
            emails = (await connection.execute(text("SELECT email FROM users"))).scalars().all()
            assert emails == ["a@a.example"]
            if engine.dialect.name == "sqlite":
                assert (await connection.execute(text("PRAGMA foreign_key_check"))).all() == []
    finally:
        await engine.dispose()
