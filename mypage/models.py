"""Tables owned by the マイページ: links, one-time codes, sessions, the org's visibility choices, documents
left for a customer, and deletion requests. Every secret is stored as its SHA-256 only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, utcnow


class MypageLink(Base):
    """A link to a customer's page sent by SMS or email. Valid until ``expires_at`` unless revoked."""

    __tablename__ = "mypage_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    sent_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MypageCode(Base):
    """A 6-digit one-time code for a link opened in a browser the page does not know. ``tries`` only ever
    grows, by one conditional UPDATE per guess (mypage.codes): never more than the limit, however many
    guesses arrive at once."""

    __tablename__ = "mypage_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("mypage_links.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of salt + code
    salt: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MypageSession(Base):
    """One browser signed in to a customer's page; its cookie (path /my only) carries the token."""

    __tablename__ = "mypage_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 (hex) of the cookie's token
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MypageSettings(Base):
    """What an org lets customers see on their page (no row: everything). Recordings: never."""

    __tablename__ = "mypage_settings"

    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True)
    show_memo: Mapped[bool] = mapped_column(Boolean, default=True)
    show_files: Mapped[bool] = mapped_column(Boolean, default=True)
    show_documents: Mapped[bool] = mapped_column(Boolean, default=True)


class LeftDocument(Base):
    """A document of the library a host chose to leave on a customer's page."""

    __tablename__ = "mypage_documents"
    __table_args__ = (UniqueConstraint("customer_id", "document_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    left_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    left_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeletionRequest(Base):
    """A customer asked for their data to be deleted; the org's admins see it and are told by email.
    ``customer_id`` is kept loose (no foreign key): the request outlives the deletion it asks for."""

    __tablename__ = "mypage_deletion_requests"
    # At most one open request per customer, however many arrive at once (migration 0014).
    __table_args__ = (
        Index(
            "uq_mypage_deletion_requests_open",
            "org_id",
            "customer_id",
            unique=True,
            sqlite_where=text("handled_at IS NULL"),
            postgresql_where=text("handled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    customer_label: Mapped[str] = mapped_column(String(300))  # name / phone / email as they were
    message: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
