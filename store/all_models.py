"""Imports every module that declares tables, so Alembic and the drift test see the whole schema."""

from __future__ import annotations

from sqlalchemy import MetaData


def metadata() -> MetaData:
    # Imported here, not at the top: store must not depend on the packages that build on it.
    import importlib

    from store import models

    for module in ("signaling.models", "recordings.models", "documents.models"):
        importlib.import_module(module)
    return models.Base.metadata
