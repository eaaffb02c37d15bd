"""ファイル送信 quotas: how many bytes of files one meeting and one org may hold.

A send states its size before a byte is read, so the quota is checked then: what is stored (the rows'
sizes) plus what is still arriving (reserved here) plus this send must fit. Checking and reserving happen
under one lock, and so does writing a finished file's row (which turns its reservation into stored bytes),
so simultaneous sends cannot all fit into the same room: the quota holds exactly on one node. Sends in flight
on other nodes count only once stored there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import N_, InvalidInput
from recordings.models import RoomFile

T = TypeVar("T")


class RoomQuotaReached(InvalidInput):
    code = "room_files_quota"
    status = 413
    message = N_(
        "This meeting has reached its limit for files ({max_mb} MB in all). "
        "Files already sent stay available."
    )


class OrgQuotaReached(InvalidInput):
    code = "org_files_quota"
    status = 413
    message = N_(
        "Your organisation's storage for files is full ({max_gb} GB). Please contact your administrator."
    )


async def stored_bytes(db: AsyncSession, *, room_id: str | None = None, org_id: int | None = None) -> int:
    query = select(func.coalesce(func.sum(RoomFile.size), 0))
    if room_id is not None:
        query = query.where(RoomFile.room_id == room_id)
    if org_id is not None:
        query = query.where(RoomFile.org_id == org_id)
    return int(await db.scalar(query) or 0)


class Reservation:
    """Bytes of a room's and an org's quotas held for one send while it arrives."""

    def __init__(self, quotas: FileQuotas, room_id: str, org_id: int, size: int) -> None:
        self.quotas, self.room_id, self.org_id, self.size = quotas, room_id, org_id, size
        self.held = True

    async def store(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run ``write`` (the transaction that adds the file's row) under the quotas' lock; once it has
        committed, the bytes count as stored and the reservation ends."""
        async with self.quotas._lock:
            result = await write()
            self.release()
            return result

    def release(self) -> None:
        if self.held:
            self.held = False
            self.quotas._take_back(self)


class FileQuotas:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], room_bytes: int, org_bytes: int) -> None:
        self.sessions = sessions
        self.room_bytes = room_bytes
        self.org_bytes = org_bytes
        self._lock = asyncio.Lock()
        self._rooms: Counter[str] = Counter()
        self._orgs: Counter[int] = Counter()

    @contextlib.asynccontextmanager
    async def reserve(self, room_id: str, org_id: int, size: int) -> AsyncIterator[Reservation]:
        """Hold ``size`` bytes of the room's and the org's quotas while a send arrives; raises
        :class:`RoomQuotaReached` / :class:`OrgQuotaReached` when it does not fit. Write the file's row with
        :meth:`Reservation.store`; leaving the block without it gives the bytes back."""
        async with self._lock:
            async with self.sessions() as db:
                in_room = await stored_bytes(db, room_id=room_id)
                in_org = await stored_bytes(db, org_id=org_id)
            if in_room + self._rooms[room_id] + size > self.room_bytes:
                raise RoomQuotaReached(max_mb=f"{self.room_bytes / (1024 * 1024):.4g}")
            if in_org + self._orgs[org_id] + size > self.org_bytes:
                raise OrgQuotaReached(max_gb=f"{self.org_bytes / (1024 * 1024 * 1024):.4g}")
            self._rooms[room_id] += size
            self._orgs[org_id] += size
        reservation = Reservation(self, room_id, org_id, size)
        try:
            yield reservation
        finally:
            reservation.release()

    def _take_back(self, reservation: Reservation) -> None:
        self._rooms[reservation.room_id] -= reservation.size
        self._orgs[reservation.org_id] -= reservation.size
        if not self._rooms[reservation.room_id]:
            del self._rooms[reservation.room_id]
        if not self._orgs[reservation.org_id]:
            del self._orgs[reservation.org_id]
