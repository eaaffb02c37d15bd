"""document leases: which node processes a document (lease_node, lease_until) and how often one took it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_node", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("attempts")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_node")
