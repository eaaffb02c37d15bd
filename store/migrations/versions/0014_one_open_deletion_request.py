"""one open deletion request per customer: a unique index on open requests (two asked at once told the admins
twice)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OPEN = sa.text("handled_at IS NULL")


def upgrade() -> None:
    # Any duplicates the race already made: the first stays open, the rest count as handled when asked.
    op.execute(
        "UPDATE mypage_deletion_requests SET handled_at = requested_at WHERE handled_at IS NULL AND id NOT IN"
        " (SELECT MIN(id) FROM mypage_deletion_requests WHERE handled_at IS NULL"
        " GROUP BY org_id, customer_id)"
    )
    op.create_index(
        "uq_mypage_deletion_requests_open",
        "mypage_deletion_requests",
        ["org_id", "customer_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_mypage_deletion_requests_open", table_name="mypage_deletion_requests")
