"""Files being received: streamed into storage as they arrive (``core.storage``: a ``.partial`` file on this
box, a multipart upload on S3), hashed on the way, and either kept whole under their key or discarded — so
a failed, oversized or interrupted upload never leaves half a file."""

from __future__ import annotations

import hashlib

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
