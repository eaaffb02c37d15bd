"""Tables. Every tenant-owned row carries ``org_id``; queries filter on it (see ``web.accounts``)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def str_enum(kind: type[enum.Enum]) -> Enum:
    """An enum column stored as its values (not names), as plain strings on every database."""
    return Enum(
        kind, native_enum=False, length=16, values_callable=lambda members: [m.value for m in members]
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    HOST = "host"


class Org(Base):
    """A tenant: one company using tsunagu. Nobody sees another org's data."""

    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # What the guest accepts before a number is issued; empty means the built-in texts.
    terms_of_use: Mapped[str] = mapped_column(Text, default="")
    personal_data_policy: Mapped[str] = mapped_column(Text, default="")
    privacy_policy: Mapped[str] = mapped_column(Text, default="")
    # Pre-connect defaults on the host's 電話商談 screen.
    default_camera: Mapped[bool] = mapped_column(Boolean, default=True)
    default_recording: Mapped[bool] = mapped_column(Boolean, default=False)
    # ファイル送信: the org may forbid hosts from sending files to guests (guests may always send).
    host_file_send: Mapped[bool] = mapped_column(Boolean, default=True)
    # 同席: whether the participants are shown 「上長が同席中」 while a manager sits in on their meeting.
    show_sit_in: Mapped[bool] = mapped_column(Boolean, default=True)

    users: Mapped[list[User]] = relationship(back_populates="org")


class User(Base):
    """A person who signs in: an admin, a manager or a host (salesperson). Guests never have accounts."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(str_enum(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Empty means "follow the browser" (Accept-Language, Japanese when unsure).
    locale: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    org: Mapped[Org] = relationship(back_populates="users")


class LoginSession(Base):
    """One signed-in browser. Its cookie carries a random token; only the token's SHA-256 is stored, so a
    copy of the database signs nobody in. Deleting the row ends the session at once, whatever the cookie
    says: sign-out ends this one, a password change or a deactivation every one of the user's."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 (hex) of the cookie's token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BusinessCard(Base):
    """A host's 名刺, shown to guests in the call and saved by them as a vCard or an image."""

    __tablename__ = "business_cards"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    family_name: Mapped[str] = mapped_column(String(100), default="")
    given_name: Mapped[str] = mapped_column(String(100), default="")
    family_name_reading: Mapped[str] = mapped_column(String(100), default="")  # ふりがな
    given_name_reading: Mapped[str] = mapped_column(String(100), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    # File names under DATA_DIR/cards/<user_id>/: the photo and up to 3 extra images, JSON list.
    photo: Mapped[str] = mapped_column(String(100), default="")
    images: Mapped[str] = mapped_column(Text, default="[]")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MemoTemplate(Base):
    """A memo template: a host's own (up to 10) or, with no owner, shared by the org (up to 3).

    One shared template of an org may be its default: every new meeting's memo starts with its text
    (seed 004: 事前に設定したテンプレートをあらかじめ表示). Admins choose it; ``web.memo_templates`` keeps
    it to one.
    """

    __tablename__ = "memo_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
