"""Rooms as stored: creating one with its meeting record, finding it for a participant, recording its state.

Guests have no accounts; a guest is a browser holding a random token. Only its SHA-256 is stored, and a room
admits the one browser whose token matches.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import NotFound
from recordings.models import MeetingEvent, MeetingRecord, PageView
from recordings.records import (
    StoredMemoUpdate,
    add_memo_updates,
    end_record,
    memo_updates,
    record_for_room,
    record_page_shown,
    replace_memo_updates,
    save_memo,
    start_record,
)
from signaling import memo
from signaling.memo_authors import LoggedUpdate, MemoLine, compacted, line_authors
from signaling.models import JoinedVia, RoomRow, RoomState
from signaling.protocol import DocumentInfo, Role
from store.db import unavailable_when_transient
from store.models import User

if TYPE_CHECKING:
    from signaling.writer import MemoRow

FindDocument = Callable[[AsyncSession, RoomRow, int], Awaitable[DocumentInfo | None]]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def create_room(
    db: AsyncSession,
    *,
    org_id: int,
    host_id: int,
    via: JoinedVia,
    guest_token: str | None,
    camera: bool,
    recording: bool,
    home_node: str,
    now: float,
    memo_text: str = "",
) -> tuple[RoomRow, MeetingRecord]:
    """A new room and its meeting record. ``memo_text`` (the org's default template) is the memo's first
    update, written with the room: so the memo is filled exactly once per meeting, before anybody can join,
    and never again when someone reconnects or the server restarts (the stored memo is what they load)."""
    room = RoomRow(
        id=uuid.uuid4().hex,
        org_id=org_id,
        host_id=host_id,
        state=RoomState.WAITING,
        via=via,
        guest_token_hash=token_hash(guest_token) if guest_token else "",
        camera=camera,
        recording=recording,
        home_node=home_node,
        created_at=at(now),
    )
    db.add(room)
    await db.flush()
    record = await start_record(
        db, org_id=org_id, room_id=room.id, host_id=host_id, via=via.value, started_at=at(now)
    )
    if memo_text:
        # Authored by the host: the template is the host's side of the memo in the 商談記録.
        update = memo.SharedMemo().insert(0, memo_text)
        await add_memo_updates(db, [(room.id, update, Role.HOST.value, at(now))])
    return room, record


async def room_for_host(db: AsyncSession, room_id: str, user_id: int, org_id: int) -> RoomRow:
    room = await db.scalar(
        select(RoomRow).where(RoomRow.id == room_id, RoomRow.host_id == user_id, RoomRow.org_id == org_id)
    )
    if room is None:
        raise NotFound()
    return room


async def room_for_guest(db: AsyncSession, room_id: str, guest_token: str | None) -> RoomRow:
    if not guest_token:
        raise NotFound()
    room = await db.scalar(
        select(RoomRow).where(RoomRow.id == room_id, RoomRow.guest_token_hash == token_hash(guest_token))
    )
    if room is None:
        raise NotFound()
    return room


async def admitted_room(db: AsyncSession, guest_token: str) -> RoomRow | None:
    """The newest room a host has let this guest browser into and that it has not entered yet.

    Only waiting rooms: a room the guest already entered (and perhaps left with 終了) is not where a new
    number should lead.
    """
    return await db.scalar(
        select(RoomRow)
        .where(RoomRow.guest_token_hash == token_hash(guest_token), RoomRow.state == RoomState.WAITING)
        .order_by(RoomRow.created_at.desc())
        .limit(1)
    )


async def set_state(db: AsyncSession, room_id: str, state: RoomState, now: float) -> None:
    values: dict[str, object] = {"state": state}
    if state == RoomState.ENDED:
        values["ended_at"] = at(now)
        await end_record(db, room_id, at(now))
    await db.execute(update(RoomRow).where(RoomRow.id == room_id).values(**values))


async def connect_id(db: AsyncSession, room_id: str) -> str:
    record = await record_for_room(db, room_id)
    return record.connect_id if record else ""


async def memo_text(db: AsyncSession, room_id: str) -> str:
    """The memo's text rebuilt from its stored updates."""
    return memo.text_of([row.update for row in await memo_updates(db, room_id)])


def logged_updates(rows: list[StoredMemoUpdate]) -> list[LoggedUpdate]:
    return [LoggedUpdate(r.update, r.author, as_utc(r.created_at).timestamp(), r.authors) for r in rows]


async def memo_lines(db: AsyncSession, room_id: str) -> list[MemoLine]:
    """The memo's lines with who wrote each and when (the 商談記録), from its stored updates."""
    rows = logged_updates(await memo_updates(db, room_id))
    return await asyncio.to_thread(line_authors, rows)  # a replay: CPU work, off the rooms' event loop


class DatabaseRoomStore:
    """The home node's :class:`~signaling.hub.RoomStore`: room states and page views in the database.

    ``find`` looks a document up for a room (it lives in the web layer, which knows the library). A busy,
    locked or unreachable database raises :class:`~store.db.StoreUnavailable` (the writer retries it).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], find: FindDocument) -> None:
        self.sessions = sessions
        self.find = find

    async def set_state(self, room_id: str, state: RoomState, when: float) -> None:
        async with unavailable_when_transient(), self.sessions.begin() as db:
            await set_state(db, room_id, state, when)

    async def page_shown(self, room_id: str, document_id: int | None, page: int, when: float) -> None:
        async with unavailable_when_transient(), self.sessions.begin() as db:
            await record_page_shown(db, room_id, document_id, page, at(when))

    async def find_document(self, room_id: str, document_id: int) -> DocumentInfo | None:
        async with unavailable_when_transient(), self.sessions() as db:
            room = await db.get(RoomRow, room_id)
            return None if room is None else await self.find(db, room, document_id)

    async def shown_page(self, room_id: str) -> tuple[DocumentInfo, int] | None:
        async with unavailable_when_transient(), self.sessions() as db:
            view = await db.scalar(
                select(PageView)
                .where(PageView.room_id == room_id, PageView.ended_at.is_(None))
                .order_by(PageView.id.desc())
                .limit(1)
            )
            room = None if view is None else await db.get(RoomRow, room_id)
            if view is None or room is None:
                return None
            info = await self.find(db, room, view.document_id)  # still one the host may show
            return None if info is None else (info, view.page)

    async def load_memo(self, room_id: str) -> list[bytes]:
        async with unavailable_when_transient(), self.sessions() as db:
            return [row.update for row in await memo_updates(db, room_id)]

    async def memo_updated(self, updates: list[MemoRow]) -> None:
        async with unavailable_when_transient(), self.sessions.begin() as db:
            await add_memo_updates(db, [(u.room_id, u.update, u.author, at(u.when)) for u in updates])

    async def compact_memo(self, room_id: str) -> None:
        """Merge the stored updates into one, keeping who wrote which part of the text beside it
        (signaling/memo_authors.py), and the text so far in the meeting record, where it can be searched
        while the meeting goes on."""
        async with unavailable_when_transient(), self.sessions.begin() as db:
            rows = await memo_updates(db, room_id)
            if len(rows) > 1:
                # Replaying a few hundred updates is CPU work: off the event loop the rooms share.
                # The text comes from the same replay: rebuilt from the merged update here, on the loop, it
                # took 30-60 ms for a 4,000-character memo, over a quarter of compaction's CPU (bench/README).
                done = await asyncio.to_thread(compacted, logged_updates(rows))
                last = rows[-1]
                await replace_memo_updates(
                    db, room_id, last.id, done.update, as_utc(last.created_at), done.authors
                )
                await save_memo(db, room_id, done.text)

    async def memo_final(self, room_id: str, text: str) -> None:
        async with unavailable_when_transient(), self.sessions.begin() as db:
            await save_memo(db, room_id, text)

    async def meeting_event(self, room_id: str, kind: str, detail: str, when: float) -> None:
        async with unavailable_when_transient(), self.sessions.begin() as db:
            db.add(MeetingEvent(room_id=room_id, kind=kind, detail=detail[:200], at=at(when)))


async def live_rooms(
    db: AsyncSession, org_id: int, since: datetime
) -> list[tuple[RoomRow, MeetingRecord, str]]:
    """The org's meetings in progress (商談中: both sides have been in, not ended), newest first, with the
    host's name; rooms started before ``since`` are left out (one a crashed node never ended stays active)."""
    result = await db.execute(
        select(RoomRow, MeetingRecord, func.coalesce(User.display_name, ""))
        .join(MeetingRecord, MeetingRecord.room_id == RoomRow.id)
        .outerjoin(User, User.id == RoomRow.host_id)
        .where(RoomRow.org_id == org_id, RoomRow.state == RoomState.ACTIVE, RoomRow.created_at >= since)
        .order_by(RoomRow.created_at.desc())
    )
    return [(room, record, host_name) for room, record, host_name in result]


async def rooms_homed_on(db: AsyncSession, node_id: str) -> list[tuple[str, RoomState, str, bool]]:
    """The rooms not ended whose home is ``node_id``: (room id, state, connect id, recording switch),
    oldest first."""
    result = await db.execute(
        select(RoomRow.id, RoomRow.state, func.coalesce(MeetingRecord.connect_id, ""), RoomRow.recording)
        .outerjoin(MeetingRecord, MeetingRecord.room_id == RoomRow.id)
        .where(RoomRow.home_node == node_id, RoomRow.state != RoomState.ENDED)
        .order_by(RoomRow.created_at)
    )
    return [(room_id, state, connect, recording) for room_id, state, connect, recording in result]


async def move_home(db: AsyncSession, room_id: str, from_node: str, to_node: str) -> bool:
    """Make ``to_node`` the room's home if ``from_node`` still is: one conditional UPDATE, so of several
    nodes adopting the same room at once exactly one wins."""
    result = await db.execute(
        update(RoomRow)
        .where(RoomRow.id == room_id, RoomRow.home_node == from_node, RoomRow.state != RoomState.ENDED)
        .values(home_node=to_node)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
