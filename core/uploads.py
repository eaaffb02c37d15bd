"""Files being received: streamed to a temporary file, hashed on the way, and either moved into place in
one atomic rename or removed — so a failed, oversized or interrupted upload never leaves half a file; and
how many uploads one sender may have under way at once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from core.errors import N_, TsunaguError
from core.slots import Slots


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


class UploadSlots(Slots):
    """At most ``per_sender`` uploads at once per sender (a user id, a guest's room), in this process."""

    def __init__(self, per_sender: int) -> None:
        super().__init__(per_sender, TooManyUploads)
