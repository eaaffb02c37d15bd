"""memo, files, business cards, memo templates

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 14:08:10.319229
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memo_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(length=32), nullable=False),
        sa.Column("update", sa.LargeBinary(), nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memo_updates")),
    )
    with op.batch_alter_table("memo_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memo_updates_room_id"), ["room_id"], unique=False)

    op.create_table(
        "room_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_room_files_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_files")),
    )
    with op.batch_alter_table("room_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_room_files_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_room_files_room_id"), ["room_id"], unique=False)

    op.create_table(
        "business_cards",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name_reading", sa.String(length=100), nullable=False),
        sa.Column("given_name_reading", sa.String(length=100), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("photo", sa.String(length=100), nullable=False),
        sa.Column("images", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_business_cards_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_business_cards_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_business_cards")),
    )
    with op.batch_alter_table("business_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_business_cards_org_id"), ["org_id"], unique=False)

    op.create_table(
        "memo_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_memo_templates_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_memo_templates_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memo_templates")),
    )
    with op.batch_alter_table("memo_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memo_templates_org_id"), ["org_id"], unique=False)

    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("memo", sa.Text(), nullable=False, server_default=""))

    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("host_file_send", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_column("host_file_send")

    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.drop_column("memo")

    with op.batch_alter_table("memo_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memo_templates_org_id"))

    op.drop_table("memo_templates")
    with op.batch_alter_table("business_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_business_cards_org_id"))

    op.drop_table("business_cards")
    with op.batch_alter_table("room_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_files_room_id"))
        batch_op.drop_index(batch_op.f("ix_room_files_org_id"))

    op.drop_table("room_files")
    with op.batch_alter_table("memo_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memo_updates_room_id"))

    op.drop_table("memo_updates")
