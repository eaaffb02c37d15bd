"""Imports every module that declares tables, so Alembic and the drift test see the whole schema."""

from __future__ import annotations

from sqlalchemy import MetaData


def metadata() -> MetaData:
    # Imported here, not at the top: store must not depend on the packages that build on it.
    import importlib

    from store import models

    for module in (
        "signaling.models",
        "recordings.models",
        "documents.models",
        "deals.models",
        "deals.quote_models",
        "mypage.models",
    ):
        importlib.import_module(module)
    return models.Base.metadata


def managed(name: str | None, type_: str, parent_names: object = None) -> bool:
    """Whether the model/migration comparison looks at this table or index (Alembic's ``include_name``).

    Packages list what their migrations make that models cannot describe in ``metadata.info["unmanaged"]``
    (full-text indexes: an FTS5 table and its shadow tables ``<name>_data``, ``_idx``…; a GIN expression
    index)."""
    unmanaged: set[str] = metadata().info.get("unmanaged", set())
    return name is None or not any(name == u or name.startswith(f"{u}_") for u in unmanaged)
