"""Tables owned by recordings: meeting records (商談記録)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text
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
    memo: Mapped[str] = mapped_column(Text, default="")  # the shared memo's final text (共有メモ)


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


class MemoUpdate(Base):
    """One Yjs/pycrdt update of a room's shared memo, in arrival order: the memo's durable log.

    Replaying a room's updates rebuilds its memo (after a restart, say); ``author`` and ``created_at`` say who
    wrote what when. Compaction replaces a run of updates with one merged update, and keeps in ``authors``
    who wrote which part of the text so far (signaling/memo_authors.py).
    """

    __tablename__ = "memo_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(32), index=True)
    update: Mapped[bytes] = mapped_column(LargeBinary)
    author: Mapped[str] = mapped_column(String(16))  # "host", "guest", or "merged" after compaction
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A merged row's authorship: JSON [[author, POSIX time, UTF-8 bytes], ...] over its text, in order.
    authors: Mapped[str | None] = mapped_column(Text, nullable=True)


class RoomFile(Base):
    """A file sent in a meeting (ファイル送信), kept in room storage and listed in the meeting record."""

    __tablename__ = "room_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(32), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str] = mapped_column(String(16))  # "host" or "guest"
    name: Mapped[str] = mapped_column(String(255))  # sanitised
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
