"""The rooms' ordered writer: room states, page views and memo updates are stored in arrival order, off the
path of the frames people wait for, and retried until they are stored.

One writer serves every room homed on the node. A full queue makes rooms wait (backpressure) rather than
grow memory. Memo updates that arrive together are written in one transaction (the fast path's keystrokes,
one after another, are queued as one list of rows: ``offer``), and a room's stored updates are merged into
one row once there are more than :data:`MEMO_COMPACT_ROWS`.

Failures (the contract the hub relies on):

- A write that fails with :class:`~core.errors.Unavailable` (the store translates a busy, locked or
  unreachable database into it: SQLite's "database is locked", a PostgreSQL connection lost) is retried,
  in order, with back-off from :data:`RETRY_FIRST_DELAY` doubling up to :data:`RETRY_MAX_DELAY`, for as long
  as it takes; nothing behind it is written before it. A meeting goes on meanwhile.
- Any other error is a write that will not succeed by waiting (a bug, a constraint): it is tried
  :data:`OTHER_ERROR_ATTEMPTS` times, then logged as ``room.write_failed`` and given up, so that one bad write
  cannot stop every room's writes for good.
- :meth:`RoomWriter.flush` returns only when everything put before it is stored or given up, and
  :meth:`RoomWriter.stored` says which: nothing is acknowledged that is not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import structlog

from core.errors import Unavailable

log = structlog.get_logger("tsunagu.rooms")

# Memo updates are written at most this much later, in one transaction. Every keystroke is a row, and a row
# costs less in a bigger transaction (SQLite's index pages are written once per commit): 0.25 s halved what
# the log cost per keystroke against 0.05 s (bench/README.md). Nothing typed waits for it: the peer has the
# update at once, and after a crash the browsers bring back what the log had not stored yet. Any other write
# (a room's state, a page view, a sit-in's end) or a flush behind them ends the wait: those are not kept back.
MEMO_BATCH_SECONDS = 0.25
MEMO_COMPACT_ROWS = 200  # more stored memo updates than this in a room: merge them into one
QUEUE_SIZE = 5000
RETRY_FIRST_DELAY = 0.05
RETRY_MAX_DELAY = 2.0
OTHER_ERROR_ATTEMPTS = 3


class MemoRow(NamedTuple):  # a tuple: made for every keystroke, it costs a third of a frozen dataclass
    room_id: str
    update: bytes
    author: str
    when: float


Write = MemoRow | tuple[str, Callable[[], Awaitable[None]]]  # a memo row, or (room id, something to store)


class MemoStore(Protocol):
    async def memo_updated(self, updates: list[MemoRow]) -> None:
        """Store memo updates (of any rooms), in this order, in one transaction."""
        ...

    async def compact_memo(self, room_id: str) -> None:
        """Replace the room's memo update rows by one merged update."""
        ...


@dataclass(eq=False)
class _Queued:
    # A list: memo rows offered one after another, queued once (see offer); the writer takes them together.
    write: Write | list[MemoRow]
    done: asyncio.Future[bool] | None = None  # for stored(): True once stored, False when given up


class RoomWriter:
    def __init__(self, store: MemoStore) -> None:
        self.store = store
        self.memo_compact_rows = MEMO_COMPACT_ROWS
        self.retry_first_delay = RETRY_FIRST_DELAY
        self.retry_max_delay = RETRY_MAX_DELAY
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self._memo_rows: dict[str, int] = {}  # stored memo update rows per open room, to know when to compact
        self._due: dict[str, None] = {}  # rooms to compact, oldest first (an ordered set)
        self._prompt = asyncio.Event()  # something other than memo rows waits: write what is queued now
        self._open_rows: list[MemoRow] | None = None  # offered rows queued last: later ones join them
        self._rows_waiting = 0  # rows in such lists not yet taken for writing
        self.retries = 0  # writes attempted again after a transient failure (for tests and metrics)

    def opened(self, room_id: str, memo_rows: int) -> None:
        """A room homed here opened with ``memo_rows`` stored memo updates."""
        self._memo_rows[room_id] = memo_rows

    def closed(self, room_id: str) -> None:
        self._memo_rows.pop(room_id, None)
        self._due.pop(room_id, None)

    async def put(self, write: Write) -> None:
        """Queue ``write``; it is stored in order, retried while the store is unavailable."""
        await self._put(_Queued(write))

    def has_room(self) -> bool:
        """True when :meth:`offer` will take a write now."""
        return not self._queue.full() and self._rows_waiting < QUEUE_SIZE

    def offer(self, write: Write) -> None:
        """Queue ``write`` without waiting (check :meth:`has_room` first): the room's fast path. A memo row
        right after another joins it in the queue (one list, no queue operation per keystroke)."""
        if self._task is None:
            self._task = asyncio.create_task(self._write_in_order(), name="room-writer")
        if isinstance(write, MemoRow):
            rows = self._open_rows
            if rows is None:
                rows = self._open_rows = []
                self._queue.put_nowait(_Queued(rows))
            rows.append(write)
            self._rows_waiting += 1
            return
        self._open_rows = None  # later rows go behind this write
        self._queue.put_nowait(_Queued(write))
        self._prompt.set()

    async def stored(self, write: Write) -> bool:
        """Queue ``write`` and wait until it is stored (True) or given up (False), after what came before."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._put(_Queued(write, done))
        return await done

    async def _put(self, queued: _Queued) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._write_in_order(), name="room-writer")
        self._open_rows = None  # rows offered from now on go behind this write (see offer)
        await self._queue.put(queued)
        self._open_rows = None  # and those offered while it waited for space, too
        if not isinstance(queued.write, MemoRow):
            self._prompt.set()

    async def flush(self) -> None:
        """Wait until everything queued so far is stored (or given up after errors retrying cannot fix)."""
        self._prompt.set()
        await self._queue.join()
        if self._queue.empty():
            self._prompt.clear()  # nothing is left to hurry: the next keystrokes are gathered again

    @property
    def pending(self) -> int:
        """Writes queued and not yet taken (a run of offered memo rows counts once)."""
        return self._queue.qsize()

    async def aclose(self) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), 5.0)
            if self._queue.qsize():
                log.error("room.writes_unsaved", count=self._queue.qsize())
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write_in_order(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if isinstance(batch[0].write, MemoRow | list) and not self._prompt.is_set():
                # Keystrokes come many a second: gather them for a moment into one transaction.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._prompt.wait(), MEMO_BATCH_SECONDS)
            self._prompt.clear()  # before taking what is queued: whatever comes after it sets it again
            while len(batch) < 5000 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # What is taken is written as it is now: rows offered from here on go into a new list.
            self._open_rows = None
            self._rows_waiting -= sum(len(q.write) for q in batch if isinstance(q.write, list))
            try:
                await self._write_batch(batch)
            finally:
                for queued in batch:
                    if queued.done is not None and not queued.done.done():
                        queued.done.set_result(False)  # cancelled while writing: not known to be stored
                    self._queue.task_done()

    async def _write_batch(self, batch: list[_Queued]) -> None:
        memo: list[_Queued] = []
        for queued in [*batch, None]:
            if queued is not None and isinstance(queued.write, MemoRow | list):
                memo.append(queued)
                continue
            if memo:
                await self._write_memo(memo)
                memo = []
            if queued is not None:
                assert not isinstance(queued.write, MemoRow | list)
                room_id, call = queued.write
                _settle(queued, await self._retrying(call, "room.write", rooms=[room_id]))

    async def _write_memo(self, queued: list[_Queued]) -> None:
        rows: list[MemoRow] = []
        for q in queued:
            if isinstance(q.write, list):
                rows.extend(q.write)
            elif isinstance(q.write, MemoRow):
                rows.append(q.write)
        rooms = sorted({row.room_id for row in rows})
        ok = await self._retrying(lambda: self.store.memo_updated(rows), "memo.write", rooms=rooms)
        for q in queued:
            _settle(q, ok)
        if not ok:
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
            # Nothing is lost: the rows stay as they are and the room is compacted after its next update.
            log.exception("could not compact a memo", room=room_id)

    async def _retrying(self, call: Callable[[], Awaitable[None]], what: str, rooms: list[str]) -> bool:
        """Run ``call`` until it succeeds (True); False after :data:`OTHER_ERROR_ATTEMPTS` other errors."""
        delay = self.retry_first_delay
        failures = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                await call()
            except Unavailable as exc:
                if attempt == 1:
                    log.warning(f"{what}_retrying", rooms=rooms, error=repr(exc.__cause__ or exc))
            except Exception:
                failures += 1
                if failures >= OTHER_ERROR_ATTEMPTS:
                    log.exception(f"{what}_failed", rooms=rooms, attempts=attempt)
                    return False
            else:
                if attempt > 1:
                    log.info(f"{what}_stored", rooms=rooms, attempts=attempt)
                return True
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_delay)


def _settle(queued: _Queued, ok: bool) -> None:
    if queued.done is not None and not queued.done.done():
        queued.done.set_result(ok)
