"""What a room's home stores, carried out through the ordered writer (``signaling/writer.py``).

The room (``signaling/room.py``) says what to keep as effects; :func:`keep` turns each into a write, in
arrival order, retried while the database is busy. Two must be stored before the room goes on, and are
awaited: a document's first page (the stored view is what lets the guest's browser fetch its images) and
the room's end (a connect arriving after the home let go of the room must find it ended).
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

from signaling.models import RoomState
from signaling.room import Happened, MemoFinal, MemoUpdated, PageShown, StateChanged
from signaling.writer import MemoRow, MemoStore, RoomWriter

Kept = StateChanged | PageShown | MemoUpdated | MemoFinal | Happened


class KeptStore(MemoStore, Protocol):
    async def set_state(self, room_id: str, state: RoomState, when: float) -> None: ...

    async def page_shown(self, room_id: str, document_id: int | None, page: int, when: float) -> None: ...

    async def memo_final(self, room_id: str, text: str) -> None:
        """Keep the memo's final text in the meeting record."""
        ...

    async def meeting_event(self, room_id: str, kind: str, detail: str, when: float) -> None:
        """Keep an event on the meeting's timeline (recordings.models.MeetingEvent)."""
        ...


async def keep(writer: RoomWriter, store: KeptStore, room_id: str, effect: Kept, now: float) -> None:
    match effect:
        case StateChanged(state=state):
            write = partial(store.set_state, room_id, state, now)
            if state == RoomState.ENDED:
                await writer.stored((room_id, write))
            else:
                await writer.put((room_id, write))
        case PageShown(document_id=document_id, page=page, at=at, opens=opens):
            view = partial(store.page_shown, room_id, document_id, page, at)
            if opens:
                await writer.stored((room_id, view))
            else:
                await writer.put((room_id, view))
        case MemoUpdated(update=update, author=author, at=at):
            await writer.put(MemoRow(room_id, update, author.value, at))
        case Happened(kind=kind, detail=detail, at=at):
            await writer.put((room_id, partial(store.meeting_event, room_id, kind.value, detail, at)))
        case MemoFinal(text=text):
            # Queued after every update of the memo, so the final text is the last word.
            await writer.put((room_id, partial(store.memo_final, room_id, text)))
