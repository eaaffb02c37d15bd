"""rooms, join links, sms, meeting records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:01:40.377942
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(length=32), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("connect_id", sa.String(length=7), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"], ["users.id"], name=op.f("fk_meeting_records_host_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_meeting_records_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_records")),
        sa.UniqueConstraint("connect_id", name=op.f("uq_meeting_records_connect_id")),
        sa.UniqueConstraint("room_id", name=op.f("uq_meeting_records_room_id")),
    )
    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meeting_records_org_id"), ["org_id"], unique=False)

    op.create_table(
        "rooms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("waiting", "active", "ended", name="roomstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "via", sa.Enum("number", "link", name="joinedvia", native_enum=False, length=16), nullable=False
        ),
        sa.Column("guest_token_hash", sa.String(length=64), nullable=False),
        sa.Column("camera", sa.Boolean(), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        sa.Column("home_node", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"], ["users.id"], name=op.f("fk_rooms_host_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_rooms_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
    )
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rooms_guest_token_hash"), ["guest_token_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_rooms_host_id"), ["host_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rooms_org_id"), ["org_id"], unique=False)

    op.create_table(
        "join_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.String(length=32), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"], ["users.id"], name=op.f("fk_join_links_host_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_join_links_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_join_links_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_join_links_token_hash")),
    )
    with op.batch_alter_table("join_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_join_links_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_join_links_room_id"), ["room_id"], unique=False)

    op.create_table(
        "sms_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=True),
        sa.Column("room_id", sa.String(length=32), nullable=True),
        sa.Column("to", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum("stored", "sent", "failed", name="smsstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_sms_messages_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_sms_messages_room_id_rooms"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_sms_messages_sender_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
    )
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_messages_org_id"), ["org_id"], unique=False)

    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("terms_of_use", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("personal_data_policy", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("privacy_policy", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("default_camera", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("default_recording", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_column("default_recording")
        batch_op.drop_column("default_camera")
        batch_op.drop_column("privacy_policy")
        batch_op.drop_column("personal_data_policy")
        batch_op.drop_column("terms_of_use")

    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_messages_org_id"))

    op.drop_table("sms_messages")
    with op.batch_alter_table("join_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_join_links_room_id"))
        batch_op.drop_index(batch_op.f("ix_join_links_org_id"))

    op.drop_table("join_links")
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rooms_org_id"))
        batch_op.drop_index(batch_op.f("ix_rooms_host_id"))
        batch_op.drop_index(batch_op.f("ix_rooms_guest_token_hash"))

    op.drop_table("rooms")
    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meeting_records_org_id"))

    op.drop_table("meeting_records")
