"""Files being received: streamed to a temporary file, hashed on the way, and either moved into place in
one atomic rename or removed — so a failed, oversized or interrupted upload never leaves half a file; and
how many uploads one sender may have under way at once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import N_, TsunaguError


class Upload:
    """A file being received into ``directory`` (on the same file system as where it will be kept):
    ``write`` chunks, then ``keep`` it somewhere or ``discard`` it."""

    def __init__(self, directory: Path, prefix: str = "upload-") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=directory)
        self.path = Path(name)
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        # Chunks are at most tens of KB and land in the page cache; not worth a thread hop each.
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def keep(self, destination: Path) -> None:
        """Flush, then move into place by renaming (atomic: readers never see half a file)."""
        self._file.close()
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, destination)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)


class TooManyUploads(TsunaguError):
    code = "too_many_uploads"
    status = 429
    message = N_("Too many uploads at once. Please wait until the others have finished.")


class UploadSlots:
    """At most ``per_sender`` uploads at once per sender (a user id, a guest's token), in this process.

    Taking a slot never awaits, so a burst of simultaneous uploads cannot all slip past the count."""

    def __init__(self, per_sender: int) -> None:
        if per_sender < 1:
            raise ValueError("per_sender must be >= 1")
        self.per_sender = per_sender
        self._held: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, sender: str) -> Iterator[None]:
        """One upload slot of ``sender`` for the ``with`` block; :class:`TooManyUploads` when none is free."""
        if self._held.get(sender, 0) >= self.per_sender:
            raise TooManyUploads()
        self._held[sender] = self._held.get(sender, 0) + 1
        try:
            yield
        finally:
            self._held[sender] -= 1
            if not self._held[sender]:
                del self._held[sender]

    def held(self, sender: str) -> int:
        return self._held.get(sender, 0)
