"""quotes and negotiation: the org's quote settings, quotes, their items, negotiation moves and the
hosts' in-app notices

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 04:24:30.915532
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quote_settings",
        sa.Column("org_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "tax_mode",
            sa.Enum("exclusive", "inclusive", "none", name="taxmode", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("tax_rate", sa.Integer(), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column(
            "negotiation",
            sa.Enum("off", "automatic", "staffed", name="negotiation", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("round_limit", sa.Integer(), nullable=False),
        sa.Column("contact", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_quote_settings_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_quote_settings")),
    )
    op.create_table(
        "quotes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "draft",
                "sent",
                "withdrawn",
                "negotiating",
                "accepted",
                "declined",
                "agreed",
                "failed",
                name="quotestate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "tax_mode",
            sa.Enum("exclusive", "inclusive", "none", name="taxmode", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("tax_rate", sa.Integer(), nullable=False),
        sa.Column(
            "negotiation",
            sa.Enum("off", "automatic", "staffed", name="negotiation", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("round_limit", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_total", sa.BigInteger(), nullable=True),
        sa.Column("signer_name", sa.String(length=100), nullable=False),
        sa.Column("signer_ip", sa.String(length=64), nullable=False),
        sa.Column("signer_agent", sa.String(length=500), nullable=False),
        sa.Column("customer_phone", sa.String(length=20), nullable=False),
        sa.Column("host_phone", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_quotes_author_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_quotes_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_quotes_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("token", name=op.f("uq_quotes_token")),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quotes_deal_id"), ["deal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quotes_org_id"), ["org_id"], unique=False)

    op.create_table(
        "quote_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("grade", sa.String(length=50), nullable=False),
        sa.Column("notes", sa.String(length=500), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_quote_items_quote_id_quotes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_items")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("quote_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quote_items_quote_id"), ["quote_id"], unique=False)

    op.create_table(
        "quote_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column(
            "side", sa.Enum("customer", "host", name="side", native_enum=False, length=16), nullable=False
        ),
        sa.Column(
            "kind",
            sa.Enum("counter", "accept", "decline", "closed", name="movekind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column(
            "state", sa.Enum("held", "sent", name="movestate", native_enum=False, length=16), nullable=False
        ),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_quote_moves_approved_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_quote_moves_quote_id_quotes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_quote_moves_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_moves")),
        sa.UniqueConstraint("quote_id", "seq", name=op.f("uq_quote_moves_quote_id")),
    )
    with op.batch_alter_table("quote_moves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quote_moves_quote_id"), ["quote_id"], unique=False)

    op.create_table(
        "quote_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=False),
        sa.Column(
            "event",
            sa.Enum(
                "accepted",
                "declined",
                "countered",
                "agreed",
                "failed",
                "held",
                "approved",
                name="quoteevent",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_quote_notices_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"], ["quotes.id"], name=op.f("fk_quote_notices_quote_id_quotes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_quote_notices_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_notices")),
    )
    with op.batch_alter_table("quote_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quote_notices_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quote_notices_quote_id"), ["quote_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quote_notices_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quote_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quote_notices_user_id"))
        batch_op.drop_index(batch_op.f("ix_quote_notices_quote_id"))
        batch_op.drop_index(batch_op.f("ix_quote_notices_org_id"))

    op.drop_table("quote_notices")
    with op.batch_alter_table("quote_moves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quote_moves_quote_id"))

    op.drop_table("quote_moves")
    with op.batch_alter_table("quote_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quote_items_quote_id"))

    op.drop_table("quote_items")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quotes_org_id"))
        batch_op.drop_index(batch_op.f("ix_quotes_deal_id"))

    op.drop_table("quotes")
    op.drop_table("quote_settings")
