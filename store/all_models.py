"""Imports every module that declares tables, so Alembic and the drift test see the whole schema."""

from __future__ import annotations

from sqlalchemy import MetaData


def metadata() -> MetaData:
    from store import models

    return models.Base.metadata
