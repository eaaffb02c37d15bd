"""Files being received: streamed into storage as they arrive (``core.storage``: a ``.partial`` file on this
box, a multipart upload on S3), hashed on the way, and either kept whole under their key or discarded — so
a failed, oversized or interrupted upload never leaves half a file; and how many uploads one sender may have
under way at once."""

from __future__ import annotations

import hashlib

from core.errors import N_, TsunaguError
from core.slots import Slots
from core.storage import BlobWriter


class Upload:
    """A file being received through ``writer``: ``await write`` chunks, then ``keep`` it under a key or
    ``discard`` it."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer
        self.size = 0
        self._hash = hashlib.sha256()

    async def write(self, chunk: bytes) -> None:
        await self.writer.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def keep(self, key: str) -> None:
        """Publish it at ``key``, whole (readers never see half a file)."""
        await self.writer.commit(key)

    async def discard(self) -> None:
        await self.writer.abort()


class TooManyUploads(TsunaguError):
    code = "too_many_uploads"
    status = 429
    message = N_("Too many uploads at once. Please wait until the others have finished.")


class UploadSlots(Slots):
    """At most ``per_sender`` uploads at once per sender (a user id, a guest's room), in this process."""

    def __init__(self, per_sender: int) -> None:
        super().__init__(per_sender, TooManyUploads)
