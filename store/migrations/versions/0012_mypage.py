"""the guest マイページ: links, one-time codes, sessions, the org's visibility choices, documents left for a
customer, deletion requests

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["orgs.id"], name=op.f(f"fk_{table}_org_id_orgs"), ondelete="CASCADE"
    )


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["customer_id"], ["customers.id"], name=op.f(f"fk_{table}_customer_id_customers"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "mypage_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("sent_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _org_fk("mypage_links"),
        _customer_fk("mypage_links"),
        sa.ForeignKeyConstraint(
            ["sent_by"], ["users.id"], name=op.f("fk_mypage_links_sent_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mypage_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_mypage_links_token_hash")),
    )
    with op.batch_alter_table("mypage_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mypage_links_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mypage_links_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "mypage_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["mypage_links.id"],
            name=op.f("fk_mypage_codes_link_id_mypage_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mypage_codes")),
    )
    with op.batch_alter_table("mypage_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mypage_codes_link_id"), ["link_id"], unique=False)

    op.create_table(
        "mypage_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _org_fk("mypage_sessions"),
        _customer_fk("mypage_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mypage_sessions")),
    )
    with op.batch_alter_table("mypage_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mypage_sessions_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mypage_sessions_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "mypage_settings",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("show_memo", sa.Boolean(), nullable=False),
        sa.Column("show_files", sa.Boolean(), nullable=False),
        sa.Column("show_documents", sa.Boolean(), nullable=False),
        _org_fk("mypage_settings"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_mypage_settings")),
    )

    op.create_table(
        "mypage_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("left_by", sa.Integer(), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=False),
        _org_fk("mypage_documents"),
        _customer_fk("mypage_documents"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_mypage_documents_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["left_by"], ["users.id"], name=op.f("fk_mypage_documents_left_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mypage_documents")),
        sa.UniqueConstraint("customer_id", "document_id", name=op.f("uq_mypage_documents_customer_id")),
    )
    with op.batch_alter_table("mypage_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mypage_documents_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mypage_documents_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "mypage_deletion_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("customer_label", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        _org_fk("mypage_deletion_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mypage_deletion_requests")),
    )
    with op.batch_alter_table("mypage_deletion_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mypage_deletion_requests_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mypage_deletion_requests_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    for table in (
        "mypage_deletion_requests",
        "mypage_documents",
        "mypage_settings",
        "mypage_sessions",
        "mypage_codes",
        "mypage_links",
    ):
        op.drop_table(table)
