"""Run Alembic migrations programmatically (``tsunagu db upgrade``), without an ini file to find."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from store.db import async_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config goes through ConfigParser, where '%' is special.
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Blocking: call it from a thread when an event loop is running."""
    command.upgrade(alembic_config(database_url), revision)
