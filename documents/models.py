"""Tables owned by the document library."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, str_enum, utcnow


class DocumentKind(enum.StrEnum):
    SLIDES = "slides"  # turned page by page (←/→, click left/right)
    VERTICAL = "vertical"  # one long scroll (↑/↓, wheel)


class DocumentStatus(enum.StrEnum):
    PROCESSING = "processing"  # uploaded; validating or rendering pages (``rendered`` of ``pages``)
    READY = "ready"
    FAILED = "failed"  # rejected; ``error`` is the message id saying why


class Document(Base):
    """One document in an org's library: owned by a host, or org-wide (made so by an admin)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    org_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[DocumentKind] = mapped_column(str_enum(DocumentKind), default=DocumentKind.SLIDES)
    status: Mapped[DocumentStatus] = mapped_column(
        str_enum(DocumentStatus), default=DocumentStatus.PROCESSING
    )
    error: Mapped[str] = mapped_column(String(255), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes of the uploaded file
    pages: Mapped[int] = mapped_column(Integer, default=0)
    rendered: Mapped[int] = mapped_column(Integer, default=0)  # pages rendered so far (progress)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The lease of the node processing it (documents/leases.py): who, until when (clock seconds), how often
    # a node took it. A document left processing by a node that died is taken over once its lease lapses.
    lease_node: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
