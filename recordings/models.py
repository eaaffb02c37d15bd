"""Tables owned by recordings: meeting records (商談記録)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, utcnow


class MeetingRecord(Base):
    """One meeting as managers review it. Keyed by room id; customers and deals attach here later."""

    __tablename__ = "meeting_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[str] = mapped_column(String(32), unique=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    connect_id: Mapped[str] = mapped_column(String(7), unique=True)  # 接続ID, shown to the host
    via: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PageView(Base):
    """One page of a document shown in a meeting, from ``started_at`` to ``ended_at`` (null while shown).

    Dwell per page is the sum of its views. A row also lets that meeting's guest fetch the document's pages.
    """

    __tablename__ = "page_views"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(32), index=True)
    document_id: Mapped[int] = mapped_column(Integer, index=True)  # no foreign key: records outlive documents
    page: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
