"""The rooms' ordered writer: page views and memo updates are stored in arrival order, off the path of the
frames people wait for.

One writer serves every room homed on the node. A full queue makes rooms wait (backpressure) rather than
grow memory. Memo updates that arrive together are written in one transaction, and a room's stored updates
are merged into one row once there are more than :data:`MEMO_COMPACT_ROWS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger("tsunagu.rooms")

MEMO_BATCH_SECONDS = 0.05  # memo updates are written at most this much later, in one transaction
MEMO_COMPACT_ROWS = 200  # more stored memo updates than this in a room: merge them into one
QUEUE_SIZE = 5000


@dataclass(frozen=True)
class MemoRow:
    room_id: str
    update: bytes
    author: str
    when: float


Write = MemoRow | tuple[str, Callable[[], Awaitable[None]]]  # a memo row, or (room id, a page view to store)


class MemoStore(Protocol):
    async def memo_updated(self, updates: list[MemoRow]) -> None:
        """Store memo updates (of any rooms), in this order, in one transaction."""
        ...

    async def compact_memo(self, room_id: str) -> None:
        """Replace the room's memo update rows by one merged update."""
        ...


class RoomWriter:
    def __init__(self, store: MemoStore) -> None:
        self.store = store
        self.memo_compact_rows = MEMO_COMPACT_ROWS
        self._queue: asyncio.Queue[Write] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self._memo_rows: dict[str, int] = {}  # stored memo update rows per open room, to know when to compact
        self._due: dict[str, None] = {}  # rooms to compact, oldest first (an ordered set)

    def opened(self, room_id: str, memo_rows: int) -> None:
        """A room homed here opened with ``memo_rows`` stored memo updates."""
        self._memo_rows[room_id] = memo_rows

    def closed(self, room_id: str) -> None:
        self._memo_rows.pop(room_id, None)
        self._due.pop(room_id, None)

    async def put(self, write: Write) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._write_in_order(), name="room-writer")
        await self._queue.put(write)

    async def flush(self) -> None:
        """Wait until every page view and memo update so far is stored."""
        await self._queue.join()

    async def aclose(self) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), 5.0)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write_in_order(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if isinstance(batch[0], MemoRow):
                # Keystrokes come many a second: gather them for a moment into one transaction.
                await asyncio.sleep(MEMO_BATCH_SECONDS)
            while len(batch) < 5000 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write_batch(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write_batch(self, batch: list[Write]) -> None:
        memo: list[MemoRow] = []
        for write in [*batch, None]:
            if isinstance(write, MemoRow):
                memo.append(write)
                continue
            if memo:
                await self._write_memo(memo)
                memo = []
            if write is not None:
                room_id, call = write
                try:
                    await call()
                except Exception:
                    log.exception("could not store a page view", room=room_id)

    async def _write_memo(self, rows: list[MemoRow]) -> None:
        try:
            await self.store.memo_updated(rows)
        except Exception:
            log.exception("could not store memo updates", rooms=sorted({row.room_id for row in rows}))
            return
        for row in rows:
            if row.room_id in self._memo_rows:
                self._memo_rows[row.room_id] += 1
                if self._memo_rows[row.room_id] > self.memo_compact_rows:
                    self._due.setdefault(row.room_id, None)
        # One compaction per batch at most: rooms that fill up together (a hundred rooms typing since the same
        # minute) are merged one after the other, rather than stalling the event loop all at once.
        room_id = next(iter(self._due), None)
        if room_id is None:
            return
        del self._due[room_id]
        if room_id not in self._memo_rows:
            return
        try:
            await self.store.compact_memo(room_id)
            self._memo_rows[room_id] = 1
        except Exception:
            log.exception("could not compact a memo", room=room_id)
