"""The durable store: one SQLAlchemy (async) layer over SQLite or PostgreSQL, with Alembic migrations.

``store.db`` opens engines and sessions, ``store.models`` declares the tables, ``store.migrate`` runs
Alembic. Every package but ``media`` may use it; queries that read tenant data always filter by org.
"""
