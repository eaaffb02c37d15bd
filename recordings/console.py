"""The managers' console's questions about meeting records (商談記録): which meetings match a filter (one
page, how many, or all of them for a CSV), and what the report charts add up. Queries only; the pages are
``web/records.py`` and ``web/reports.py``.

Every question carries the org; a host's questions also carry the host (hosts see only their own meetings).
"Newest first" is record id order: a record is created when its meeting starts, so ids follow start times,
and the search index (whose rows are keyed by record id) can hand matches over in that order and stop after
a page.
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import JST, in_jst, utc
from recordings.models import MeetingRecord, MeetingTag, PageView, RoomFile
from recordings.search import FTS, Term, fts_match, matches, parse, record_ids
from store.models import User

PAGE_SIZE = 50
COUNT_CAP = 1000  # a search counts its matches up to here ("1,000件以上"): counting 90,000 costs 100+ ms
EXPORT_CHUNK = 2000  # rows per chunk: ~2.6 MB of CSV; each chunk costs three look-up queries


class Sort(enum.StrEnum):
    NEWEST = "new"
    OLDEST = "old"
    LONGEST = "long"
    SHORTEST = "short"


class Via(enum.StrEnum):
    """How the meeting started (the values of ``MeetingRecord.via``)."""

    NUMBER = "number"
    LINK = "link"


@dataclass(frozen=True)
class RecordFilter:
    """Which meetings: always one org's; ``host_id`` for one host's (a host's own, or a manager's pick)."""

    org_id: int
    host_id: int | None = None
    started_from: datetime | None = None  # inclusive, aware
    started_before: datetime | None = None  # exclusive, aware
    tag: str = ""
    text: str = ""  # free text over the memo and 商談先情報 (recordings/search.py)
    sort: Sort = Sort.NEWEST

    @property
    def terms(self) -> list[Term]:
        return parse(self.text)


class RecordRow(NamedTuple):
    """One meeting as the list and the CSV show it (a named tuple: an export makes 100,000 of them)."""

    id: int
    connect_id: str
    room_id: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int | None
    via: str
    host_id: int | None
    host_name: str
    guest_name: str
    guest_reading: str
    guest_company: str
    guest_phone: str
    memo: str
    notes: str
    tags: tuple[str, ...] = ()
    files: int = 0
    documents: tuple[int, ...] = ()  # ids of the documents shown, in the order first shown


@dataclass(frozen=True)
class Page:
    rows: list[RecordRow]
    number: int  # 1-based
    total: int  # matches counted, at most COUNT_CAP + 1 for a search
    capped: bool  # a search with more than COUNT_CAP matches: ``total`` is a floor

    @property
    def pages(self) -> int:
        return max(1, -(-min(self.total, COUNT_CAP if self.capped else self.total) // PAGE_SIZE))


_COLUMNS = (
    MeetingRecord.id,
    MeetingRecord.connect_id,
    MeetingRecord.room_id,
    MeetingRecord.started_at,
    MeetingRecord.ended_at,
    MeetingRecord.duration_seconds,
    MeetingRecord.via,
    MeetingRecord.host_id,
    func.coalesce(User.display_name, "").label("host_name"),
    MeetingRecord.guest_name,
    MeetingRecord.guest_reading,
    MeetingRecord.guest_company,
    MeetingRecord.guest_phone,
    MeetingRecord.memo,
    MeetingRecord.notes,
)


def _conditions(f: RecordFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [MeetingRecord.org_id == f.org_id]
    if f.host_id is not None:
        where.append(MeetingRecord.host_id == f.host_id)
    if f.started_from is not None:
        where.append(MeetingRecord.started_at >= utc(f.started_from))
    if f.started_before is not None:
        where.append(MeetingRecord.started_at < utc(f.started_before))
    if f.tag:
        where.append(
            exists().where(
                MeetingTag.record_id == MeetingRecord.id,
                MeetingTag.tag == f.tag,
                MeetingTag.org_id == f.org_id,
            )
        )
    return where


def _duration() -> ColumnElement[int]:
    return func.coalesce(MeetingRecord.duration_seconds, -1)


def _matching(f: RecordFilter, dialect: str, columns: Sequence[Any]) -> Select[Any]:
    """The filter as one ordered SELECT of ``columns``.

    On SQLite a search sorted by start drives the query from the FTS index in record id order, so a page (or
    a capped count) stops after enough matches instead of collecting all of them first."""
    terms = f.terms
    indexed = [term for term in terms if term.indexed]
    query: Select[Any]
    if dialect == "sqlite" and indexed and f.sort in (Sort.NEWEST, Sort.OLDEST):
        query = (
            select(*columns)
            .select_from(FTS)
            .join(MeetingRecord, MeetingRecord.id == FTS.c.rowid)
            .where(fts_match(indexed))
        )
        scanned = [term for term in terms if not term.indexed]
        if scanned:
            query = query.where(MeetingRecord.id.in_(record_ids(dialect, scanned)))
        newest = f.sort == Sort.NEWEST
        query = query.order_by(FTS.c.rowid.desc() if newest else FTS.c.rowid.asc())
    else:
        query = select(*columns).select_from(MeetingRecord)
        if terms:
            query = query.where(matches(dialect, terms, MeetingRecord.id))
        order = {
            Sort.NEWEST: (MeetingRecord.id.desc(),),
            Sort.OLDEST: (MeetingRecord.id.asc(),),
            Sort.LONGEST: (_duration().desc(), MeetingRecord.id.desc()),
            Sort.SHORTEST: (_duration().asc(), MeetingRecord.id.desc()),
        }[f.sort]
        query = query.order_by(*order)
    return query.where(*_conditions(f))


def _with_host(query: Select[Any]) -> Select[Any]:
    return query.outerjoin(User, User.id == MeetingRecord.host_id)


def _dialect(db: AsyncSession) -> str:
    return db.get_bind().dialect.name


async def count(db: AsyncSession, f: RecordFilter) -> tuple[int, bool]:
    """How many meetings match, and whether that is a floor (a search with more than COUNT_CAP matches)."""
    query = _matching(f, _dialect(db), [MeetingRecord.id])
    if not f.terms:
        total = await db.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        return int(total or 0), False
    found = int(await db.scalar(select(func.count()).select_from(query.limit(COUNT_CAP + 1).subquery())) or 0)
    return found, found > COUNT_CAP


async def find(db: AsyncSession, f: RecordFilter, number: int = 1) -> Page:
    """One page of the matching meetings, with their tags, file counts and documents."""
    total, capped = await count(db, f)
    pages = max(1, -(-min(total, COUNT_CAP) // PAGE_SIZE))
    number = min(max(1, number), pages)
    query = _with_host(_matching(f, _dialect(db), _COLUMNS)).limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)
    return Page(await _completed(db, list(await db.execute(query))), number, total, capped)


async def stream(
    sessions: async_sessionmaker[AsyncSession], f: RecordFilter
) -> AsyncIterator[list[RecordRow]]:
    """Every matching meeting, in the list's order, ``EXPORT_CHUNK`` at a time: a server-side cursor feeds
    the rows, a second session looks up each chunk's tags, files and documents; nothing else is held."""
    async with sessions() as db, sessions() as lookups:
        query = _with_host(_matching(f, _dialect(db), _COLUMNS)).execution_options(yield_per=EXPORT_CHUNK)
        # On the session's connection, as Core: plain columns need none of the ORM's per-row loading
        result = await (await db.connection()).stream(query)
        async for partition in result.partitions(EXPORT_CHUNK):
            yield await _completed(lookups, partition)


def _among(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the list given as parameter ``name``, passed as ONE parameter (a JSON array on
    SQLite, an array on PostgreSQL): 500 separate parameters cost SQLAlchemy ~6 µs a row to render."""
    found: ColumnElement[bool]
    if dialect == "sqlite":
        values: Select[Any] = select(literal_column("value")).select_from(func.json_each(bindparam(name)))
        found = column.in_(values)
    else:
        element = column.type if isinstance(column.type, Integer) else String()
        found = column == func.any(bindparam(name, type_=ARRAY(element)))
    return found


@cache
def _lookups(dialect: str) -> tuple[Any, Any, Any]:
    """A chunk's tags, file counts and documents shown (in the order first shown), built once per dialect."""
    tags = (
        select(MeetingTag.record_id, MeetingTag.tag)
        .where(_among(MeetingTag.record_id, "ids", dialect))
        .order_by(MeetingTag.id)
    )
    files = (
        select(RoomFile.room_id, func.count())
        .where(_among(RoomFile.room_id, "rooms", dialect))
        .group_by(RoomFile.room_id)
    )
    documents = (
        select(PageView.room_id, PageView.document_id, func.min(PageView.id).label("first"))
        .where(_among(PageView.room_id, "rooms", dialect))
        .group_by(PageView.room_id, PageView.document_id)
        .order_by("first")
    )
    return tags, files, documents


async def _completed(db: AsyncSession, rows: Sequence[Sequence[Any]]) -> list[RecordRow]:
    """``rows`` (of ``_COLUMNS``) as records with their tags, number of files and documents shown (three
    queries for all of them)."""
    if not rows:
        return []
    dialect = _dialect(db)
    tags_of, files_of, documents_of = _lookups(dialect)
    ids, rooms = [row[0] for row in rows], [row[2] for row in rows]  # id, room_id: by index, the cheaper way
    wrap = json.dumps if dialect == "sqlite" else list
    connection = await db.connection()  # Core: the look-ups are plain columns too
    tags: dict[int, list[str]] = defaultdict(list)
    for record_id, tag in await connection.execute(tags_of, {"ids": wrap(ids)}):
        tags[record_id].append(tag)
    files = {room: n for room, n in await connection.execute(files_of, {"rooms": wrap(rooms)})}
    documents: dict[str, list[int]] = defaultdict(list)
    for room, document_id, _first in await connection.execute(documents_of, {"rooms": wrap(rooms)}):
        documents[room].append(document_id)
    tags_of_record, files_of_room, documents_of_room, new = tags.get, files.get, documents.get, tuple.__new__
    return [  # tuple.__new__ with the whole tuple: half the cost of RecordRow(*row, tags=…) per row
        new(
            RecordRow,
            (
                *row,
                tuple(tags_of_record(row[0], ())),
                int(files_of_room(row[2], 0)),
                tuple(documents_of_room(row[2], ())),
            ),
        )
        for row in rows
    ]


async def org_tags(db: AsyncSession, org_id: int) -> list[str]:
    """The tags in use in an org, for the filter's choices."""
    result = await db.scalars(
        select(MeetingTag.tag)
        .where(MeetingTag.org_id == org_id)
        .group_by(MeetingTag.tag)
        .order_by(MeetingTag.tag)
    )
    return list(result)


async def org_hosts(db: AsyncSession, org_id: int) -> list[tuple[int, str]]:
    """Everybody who has hosted a meeting in the org (deactivated accounts too), for the host filter."""
    hosts = select(MeetingRecord.host_id).where(MeetingRecord.org_id == org_id).distinct().scalar_subquery()
    result = await db.execute(
        select(User.id, User.display_name)
        .where(User.org_id == org_id, User.id.in_(hosts))
        .order_by(User.display_name)
    )
    return [(user_id, name) for user_id, name in result]


# Reports


@dataclass
class HostWeek:
    """One host's meetings in one week (Monday to Sunday, JST)."""

    week: date  # the Monday
    host_id: int | None
    host_name: str
    meetings: int = 0
    seconds: int = 0

    @property
    def minutes(self) -> int:
        return round(self.seconds / 60)


@dataclass
class DocumentDwell:
    document_id: int
    seconds: float = 0.0
    rooms: set[str] = field(default_factory=set)  # the meetings it was shown in

    @property
    def meetings(self) -> int:
        return len(self.rooms)


def week_of(moment: datetime) -> date:
    day = in_jst(moment).date()
    return day - timedelta(days=day.weekday())


async def weekly_by_host(db: AsyncSession, f: RecordFilter) -> list[HostWeek]:
    """Meetings and their minutes per host per week, oldest week first (ended meetings count their length;
    unfinished ones count as meetings with no minutes)."""
    query = _with_host(
        _matching(
            f,
            _dialect(db),
            [
                MeetingRecord.host_id,
                func.coalesce(User.display_name, "").label("host_name"),
                MeetingRecord.started_at,
                MeetingRecord.duration_seconds,
            ],
        )
    ).order_by(None)
    figures: dict[tuple[date, int | None], HostWeek] = {}
    for host_id, host_name, started_at, seconds in await db.execute(query):
        week = week_of(started_at)
        figure = figures.setdefault((week, host_id), HostWeek(week, host_id, host_name))
        figure.meetings += 1
        figure.seconds += seconds or 0
    return sorted(figures.values(), key=lambda h: (h.week, h.host_name, h.host_id or 0))


async def dwell_by_document(db: AsyncSession, f: RecordFilter) -> list[DocumentDwell]:
    """How long each document was on screen in the matching meetings, longest first (closed page views)."""
    records = _matching(f, _dialect(db), [MeetingRecord.room_id]).order_by(None).subquery()
    query = select(PageView.document_id, PageView.room_id, PageView.started_at, PageView.ended_at).where(
        PageView.room_id.in_(select(records.c.room_id)), PageView.ended_at.is_not(None)
    )
    dwell: dict[int, DocumentDwell] = {}
    for document_id, room_id, started_at, ended_at in await db.execute(query):
        figure = dwell.setdefault(document_id, DocumentDwell(document_id))
        if ended_at is not None:
            figure.seconds += max(0.0, (utc(ended_at) - utc(started_at)).total_seconds())
        figure.rooms.add(room_id)
    return sorted(dwell.values(), key=lambda d: (-d.seconds, d.document_id))


def jst_day_start(day: date) -> datetime:
    """Midnight JST of ``day``, the bound of a date filter."""
    return datetime(day.year, day.month, day.day, tzinfo=JST)
