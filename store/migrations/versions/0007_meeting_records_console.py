"""meeting records console: 商談先情報, tags, edits, sit-ins, guest acknowledgements, search index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 19:31:57.397124

Besides the tables, the search index over ``meeting_search.grams`` (see recordings/search.py): on SQLite an
FTS5 table with external content and a trigger that drops a deleted row's entry; on PostgreSQL a GIN index on
the grams as an array. Existing records are indexed here.
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE meeting_search_fts USING fts5(grams, content='meeting_search', "
    "content_rowid='record_id', tokenize='ascii', detail=full)",
    # Rows are replaced (delete + insert), never updated; the writer adds the new entry itself, because
    # FTS5 flushes its pending terms at every trigger's savepoint, which makes bulk inserts 3-4x slower.
    "CREATE TRIGGER meeting_search_fts_delete AFTER DELETE ON meeting_search BEGIN "
    "INSERT INTO meeting_search_fts(meeting_search_fts, rowid, grams) VALUES ('delete', old.record_id, "
    "old.grams); END",
)
POSTGRES_INDEX = (
    "CREATE INDEX ix_meeting_search_grams ON meeting_search USING gin (string_to_array(grams, ' '))",
)


def upgrade() -> None:
    # The columns first: on SQLite they are plain ALTER TABLE ADD COLUMN (no table rebuild).
    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duration_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("guest_name", sa.String(length=100), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("guest_reading", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("guest_company", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("guest_phone", sa.String(length=40), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=False, server_default=""))
        batch_op.create_index("ix_meeting_records_host_id", ["host_id"], unique=False)
        batch_op.create_index("ix_meeting_records_org_started", ["org_id", "started_at"], unique=False)

    # A plain ADD COLUMN: in batch mode the boolean default would make SQLite rebuild the orgs table.
    op.add_column("orgs", sa.Column("show_sit_in", sa.Boolean(), nullable=False, server_default=sa.true()))

    op.create_table(
        "acknowledged_texts",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("terms_of_use", sa.Text(), nullable=False),
        sa.Column("personal_data_policy", sa.Text(), nullable=False),
        sa.Column("privacy_policy", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_acknowledged_texts")),
    )
    op.create_table(
        "guest_acknowledgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_token_hash", sa.String(length=64), nullable=False),
        sa.Column("room_id", sa.String(length=32), nullable=True),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("texts", sa.String(length=64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_guest_acknowledgements_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["texts"],
            ["acknowledged_texts.digest"],
            name=op.f("fk_guest_acknowledgements_texts_acknowledged_texts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guest_acknowledgements")),
    )
    with op.batch_alter_table("guest_acknowledgements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guest_acknowledgements_guest_token_hash"), ["guest_token_hash"], unique=False
        )
        batch_op.create_index(
            "ix_guest_acknowledgements_room_accepted", ["room_id", "accepted_at"], unique=False
        )

    op.create_table(
        "meeting_search",
        sa.Column("record_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("grams", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["meeting_records.id"],
            name=op.f("fk_meeting_search_record_id_meeting_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_meeting_search")),
    )
    op.create_table(
        "meeting_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_meeting_tags_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["meeting_records.id"],
            name=op.f("fk_meeting_tags_record_id_meeting_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_tags")),
        sa.UniqueConstraint("record_id", "tag", name=op.f("uq_meeting_tags_record_id")),
    )
    with op.batch_alter_table("meeting_tags", schema=None) as batch_op:
        batch_op.create_index("ix_meeting_tags_org_tag", ["org_id", "tag"], unique=False)

    op.create_table(
        "record_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=True),
        sa.Column("editor_name", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("old", sa.Text(), nullable=False),
        sa.Column("new", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["editor_id"], ["users.id"], name=op.f("fk_record_edits_editor_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["meeting_records.id"],
            name=op.f("fk_record_edits_record_id_meeting_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_edits")),
    )
    with op.batch_alter_table("record_edits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_edits_record_id"), ["record_id"], unique=False)

    op.create_table(
        "sit_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["meeting_records.id"],
            name=op.f("fk_sit_ins_record_id_meeting_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sit_ins_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sit_ins")),
    )
    with op.batch_alter_table("sit_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sit_ins_record_id"), ["record_id"], unique=False)

    bind = op.get_bind()
    for statement in SQLITE_INDEX if bind.dialect.name == "sqlite" else POSTGRES_INDEX:
        op.execute(statement)
    _index_existing_records(bind)


def _index_existing_records(bind: sa.engine.Connection) -> None:
    """Records made before this revision become searchable by their memo (they have no other fields yet).

    The grams are computed here as recordings/search.py computes them at this revision (a migration never
    imports the app: the app may change its indexing later, with a migration of its own);
    tests/test_records_search.py checks that the two agree."""
    records = sa.table("meeting_records", sa.column("id", sa.Integer()), sa.column("memo", sa.Text()))
    existing = bind.execute(sa.select(records.c.id, records.c.memo))
    rows = [{"record_id": record_id, "grams": memo_grams(memo)} for record_id, memo in existing if memo]
    if not rows:
        return
    search = sa.table("meeting_search", sa.column("record_id", sa.Integer()), sa.column("grams", sa.Text()))
    bind.execute(sa.insert(search), rows)
    if bind.dialect.name == "sqlite":
        fts = "INSERT INTO meeting_search_fts(rowid, grams) VALUES (:record_id, :grams)"
        bind.execute(sa.text(fts), rows)


_SAFE = {chr(c): chr(0xE000 + c) for c in range(128) if not chr(c).isalnum()}


def memo_grams(memo: str) -> str:
    """A memo's overlapping bigrams as recordings.search.grams_for(memo=…) makes them (revision 0007)."""
    folded = unicodedata.normalize("NFKC", memo).casefold()
    for unsafe in {ch for ch in folded if ch in _SAFE}:
        folded = folded.replace(unsafe, _SAFE[unsafe])
    if len(folded) < 2:
        return folded
    return " ".join(a + b for a, b in zip(folded, folded[1:], strict=False))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS meeting_search_fts_delete")
        op.execute("DROP TABLE IF EXISTS meeting_search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_meeting_search_grams")

    with op.batch_alter_table("sit_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sit_ins_record_id"))
    op.drop_table("sit_ins")
    with op.batch_alter_table("record_edits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_edits_record_id"))
    op.drop_table("record_edits")
    with op.batch_alter_table("meeting_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_meeting_tags_org_tag")
    op.drop_table("meeting_tags")
    op.drop_table("meeting_search")
    with op.batch_alter_table("guest_acknowledgements", schema=None) as batch_op:
        batch_op.drop_index("ix_guest_acknowledgements_room_accepted")
        batch_op.drop_index(batch_op.f("ix_guest_acknowledgements_guest_token_hash"))
    op.drop_table("guest_acknowledgements")
    op.drop_table("acknowledged_texts")

    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_column("show_sit_in")
    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.drop_index("ix_meeting_records_org_started")
        batch_op.drop_index("ix_meeting_records_host_id")
        batch_op.drop_column("notes")
        batch_op.drop_column("guest_phone")
        batch_op.drop_column("guest_company")
        batch_op.drop_column("guest_reading")
        batch_op.drop_column("guest_name")
        batch_op.drop_column("duration_seconds")
