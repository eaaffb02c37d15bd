"""Tables owned by recordings: meeting records (商談記録) and what hangs off them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, utcnow

# The search index beside ``meeting_search`` is not a table SQLAlchemy can describe (an FTS5 virtual table
# and its shadow tables on SQLite, a GIN expression index on PostgreSQL; see recordings/search.py): made by
# migration 0007, left out of the model/migration comparison.
UNMANAGED = Base.metadata.info.setdefault("unmanaged", set())
UNMANAGED.update({"meeting_search_fts", "ix_meeting_search_grams"})


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
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)  # set when it ends
    # 商談先情報: who the meeting was with, filled in (or corrected) after the call by the host or a manager.
    guest_name: Mapped[str] = mapped_column(String(100), default="")
    guest_reading: Mapped[str] = mapped_column(String(100), default="")  # ふりがな
    guest_company: Mapped[str] = mapped_column(String(200), default="")
    guest_phone: Mapped[str] = mapped_column(String(40), default="")  # the SMS link's number when known
    notes: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_meeting_records_org_started", "org_id", "started_at"),
        Index("ix_meeting_records_host_id", "host_id"),
    )


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


class MeetingTag(Base):
    """A tag on a meeting record (filtering, reports)."""

    __tablename__ = "meeting_tags"
    __table_args__ = (
        UniqueConstraint("record_id", "tag"),
        Index("ix_meeting_tags_org_tag", "org_id", "tag"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("meeting_records.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(30))


class RecordEdit(Base):
    """One change to a record's 商談先情報: who changed which field from what to what, and when."""

    __tablename__ = "record_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("meeting_records.id", ondelete="CASCADE"), index=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    editor_name: Mapped[str] = mapped_column(String(200))  # as it was then: the log outlives accounts
    field: Mapped[str] = mapped_column(String(32))
    old: Mapped[str] = mapped_column(Text)
    new: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SitIn(Base):
    """A manager watching a live meeting read-only (同席), from ``started_at`` to ``ended_at``."""

    __tablename__ = "sit_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("meeting_records.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    user_name: Mapped[str] = mapped_column(String(200))
    announced: Mapped[bool] = mapped_column(Boolean)  # whether the participants were shown 「上長が同席中」
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AcknowledgedTexts(Base):
    """The exact texts a guest agreed to (利用規約, 個人情報の取扱い, プライバシーポリシー), stored once per
    distinct version (keyed by their SHA-256), so a record shows what was accepted even after an org edits
    its texts."""

    __tablename__ = "acknowledged_texts"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    terms_of_use: Mapped[str] = mapped_column(Text)
    personal_data_policy: Mapped[str] = mapped_column(Text)
    privacy_policy: Mapped[str] = mapped_column(Text)


class GuestAcknowledgement(Base):
    """A guest browser agreed to the texts (接続ナンバーを発行 / a join link's 接続する) at ``accepted_at``.

    Made before any room exists; bound to the room (``room_id``) when the host redeems the number or the
    link is accepted. ``guest_token_hash`` ties the two together, as it ties the guest to its room.
    """

    __tablename__ = "guest_acknowledgements"
    __table_args__ = (Index("ix_guest_acknowledgements_room_accepted", "room_id", "accepted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guest_token_hash: Mapped[str] = mapped_column(String(64), index=True)
    room_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True)
    via: Mapped[str] = mapped_column(String(16))  # "number" or "link"
    language: Mapped[str] = mapped_column(String(8))  # the language the texts were shown in
    texts: Mapped[str] = mapped_column(ForeignKey("acknowledged_texts.digest"))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MeetingSearch(Base):
    """The text a meeting is found by (memo and 商談先情報), as overlapping bigrams: see recordings/search.py.

    Written only by ``recordings.search.index_records``; the full-text index over it is kept in step there
    (and by a delete trigger on SQLite, for cascades)."""

    __tablename__ = "meeting_search"

    record_id: Mapped[int] = mapped_column(
        ForeignKey("meeting_records.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    grams: Mapped[str] = mapped_column(Text)
