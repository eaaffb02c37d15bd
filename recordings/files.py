"""ファイル送信: where a meeting's files are kept (``core.storage``), uploads that appear only once complete,
and the rows.

Keys::

    files/<org_id>/<room_id>/<file_id>      a file sent in the meeting (the name is kept in its RoomFile row)

(On this box's disk, ``<data_dir>/files/…``, as always.) A send is streamed to storage as it arrives (a
``.partial`` file, or an S3 multipart upload) with its SHA-256 computed on the way, and kept under its key
only once every byte has arrived and its row is written. A failed, oversized or interrupted send is
discarded (the multipart upload aborted) and leaves no row.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.names import display_name
from core.storage import Storage
from core.uploads import Upload
from recordings.models import RoomFile

FALLBACK_NAME = "file"
_ROOM_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
OCTET_STREAM = "application/octet-stream"


def sanitise_file_name(raw: str) -> str:
    """A display name from what the browser says the file was called (``core.names.display_name``: no
    folders, no control or bidi characters, NFC, at most 255 bytes with the extension kept); Japanese is
    kept. Never used as a path."""
    return display_name(raw, FALLBACK_NAME)


def clean_content_type(raw: str | None) -> str:
    """The sender's declared type when it is a plain ``type/subtype``; octet-stream otherwise."""
    value = (raw or "").split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.match(value) and len(value) <= 255 else OCTET_STREAM


class RoomFileStorage:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def prefix(self, org_id: int, room_id: str) -> str:
        if not _ROOM_ID.match(room_id):
            raise ValueError(f"bad room id {room_id!r}")
        return f"files/{int(org_id)}/{room_id}/"

    def new_upload(self) -> Upload:
        return Upload(self.storage.writer())

    def key(self, org_id: int, room_id: str, file_id: int) -> str:
        return self.prefix(org_id, room_id) + str(int(file_id))

    async def remove(self, org_id: int, room_id: str, file_id: int) -> None:
        await self.storage.delete(self.key(org_id, room_id, file_id))


async def add_room_file(
    db: AsyncSession,
    *,
    room_id: str,
    org_id: int,
    sender: str,
    name: str,
    size: int,
    sha256: str,
    content_type: str = OCTET_STREAM,
) -> RoomFile:
    row = RoomFile(
        room_id=room_id,
        org_id=org_id,
        sender=sender,
        name=sanitise_file_name(name),
        size=size,
        sha256=sha256,
        content_type=clean_content_type(content_type),
    )
    db.add(row)
    await db.flush()
    return row


async def room_files(db: AsyncSession, room_id: str) -> list[RoomFile]:
    """A meeting's files, oldest first: what the meeting record lists."""
    return list(await db.scalars(select(RoomFile).where(RoomFile.room_id == room_id).order_by(RoomFile.id)))


async def room_file(db: AsyncSession, room_id: str, org_id: int, file_id: int) -> RoomFile | None:
    return await db.scalar(
        select(RoomFile).where(RoomFile.id == file_id, RoomFile.room_id == room_id, RoomFile.org_id == org_id)
    )


def file_json(row: RoomFile) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "size": row.size,
        "sender": row.sender,
        "sha256": row.sha256,
        "content_type": row.content_type,
        "url": f"/rooms/{row.room_id}/files/{row.id}",
        "created_at": row.created_at.isoformat(),
    }
