"""Tables owned by signaling: rooms, SMS join links, and the SMS outbox."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, str_enum, utcnow


class RoomState(enum.StrEnum):
    WAITING = "waiting"  # created; the guest has not connected yet
    ACTIVE = "active"  # both sides have been in the room
    ENDED = "ended"  # the host ended it (or it was abandoned); nobody may enter again


class JoinedVia(enum.StrEnum):
    NUMBER = "number"
    LINK = "link"


class RoomRow(Base):
    """A room as stored; the live state machine is ``signaling.room.Room`` on the room's home node."""

    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[RoomState] = mapped_column(str_enum(RoomState), default=RoomState.WAITING)
    via: Mapped[JoinedVia] = mapped_column(str_enum(JoinedVia))
    # SHA-256 of the guest browser's token; empty until a guest is bound (a join link not yet opened).
    guest_token_hash: Mapped[str] = mapped_column(String(64), default="", index=True)
    camera: Mapped[bool] = mapped_column(Boolean, default=True)
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    home_node: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JoinLink(Base):
    """A single-use, expiring 接続用URL sent by SMS; opening it binds the guest to the host's room."""

    __tablename__ = "join_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SmsStatus(enum.StrEnum):
    STORED = "stored"  # kept in the outbox (the outbox gateway)
    SENT = "sent"  # accepted by the HTTP gateway
    FAILED = "failed"  # the gateway refused or could not be reached; ``error`` says why


class SmsMessage(Base):
    """Every SMS tsunagu sends or tries to send, with its outcome: the admin's SMS送信履歴."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    room_id: Mapped[str | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"), nullable=True)
    to: Mapped[str] = mapped_column(String(20))  # E.164
    body: Mapped[str] = mapped_column(Text)
    gateway: Mapped[str] = mapped_column(String(16))
    status: Mapped[SmsStatus] = mapped_column(str_enum(SmsStatus))
    error: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
