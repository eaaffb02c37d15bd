"""Blob storage: where files, documents and (later) recordings are kept — this box's disk, or S3-compatible
object storage that every box reaches.

A blob is bytes named by a key: ``/``-separated segments of ``[A-Za-z0-9_-][A-Za-z0-9._-]*``, such as
``documents/3/17/pages/1.jpg``. Which keys exist is the callers' business (``documents.storage``,
``recordings.files``, ``web.cards``); a storage only keeps bytes. :class:`LocalStorage` keeps a key at the
same path under its directory (``$DATA_DIR`` by default, so the layout on disk is the one it always was);
:class:`~core.s3_storage.S3Storage` keeps it as an object in a bucket, under an optional prefix;
:class:`MemoryStorage` keeps it in a dict, for tests. :func:`open_storage` picks one from ``STORAGE_URL``.

Contract, the same for every implementation (``tests/test_storage.py`` holds all three to it):

- **Whole or nothing.** A blob appears at its key complete, in one step — :meth:`Storage.put`,
  :meth:`Storage.put_file`, or :meth:`BlobWriter.commit` — or not at all. Writing a key that exists replaces
  the blob whole: a reader gets the old bytes or the new ones, never a mix. Keys are meant to be written
  once (new content gets a new key), which is what makes ``ETag`` caching and Range requests safe.
- **Streamed writes, append-style.** :meth:`Storage.writer` returns a :class:`BlobWriter` that takes the
  bytes in order as they arrive (``await writer.write(chunk)``), as an upload or a recording produces them.
  It holds at most one part in memory (S3: ``part_size``, ≥ 5 MiB, sent as one part of a multipart upload
  while the next part fills; the disk and memory stores: nothing beyond the chunk), so a 50 MB file or a
  two-hour recording never sits in memory whole. ``commit(key)`` publishes it; ``abort()`` removes every
  trace (the S3 multipart upload is aborted). The key may be named when the writer is made (then S3 commits
  in place) or only at commit (a row id known once the bytes are in: S3 then copies the object once,
  server-side). Misuse — writing after commit or abort, committing twice — raises :class:`WriterClosed`.
- **Nothing half-written is ever visible.** Until its commit a writer's bytes are in no key, not in
  :meth:`Storage.keys`, not readable. A writer abandoned without abort (its process was killed) leaves an
  *unfinished* entry — a ``.partial`` file, an S3 multipart upload — that :meth:`Storage.unfinished` lists and
  :meth:`Storage.sweep` removes once older than a given age (every node sweeps those older than a day,
  :data:`ABANDONED_AFTER`, when it starts). A recording that must survive its node's death
  therefore cannot rely on a writer alone: write it locally with the crash-safe muxer options (see the notes
  on recording) and ``put_file`` it once closed or repaired.
- **Streamed range reads.** :meth:`Storage.read` yields the bytes ``[start, end)`` of a blob in order, in
  chunks of at most ``chunk_size`` (so HTTP Range requests cost what they return); ``end`` past the blob is
  cut to its size, a ``start`` at or past the end yields nothing. :meth:`Storage.stat` gives the size, a
  strong ``ETag`` and the modification time that HTTP answers carry (``If-Range`` compares against them).
- **Errors.** A key with no blob raises :class:`BlobNotFound` (HTTP 404) from ``read``, ``get`` and
  ``local_file`` (``stat`` returns ``None``; ``delete`` of a missing key is not an error). A backend that
  cannot be reached or refuses raises :class:`StorageUnavailable` (503); its own exceptions never escape. A
  malformed key raises :class:`ValueError` (a bug in the caller, never user input: keys are built from ids).
- **Concurrency.** One storage serves every task of the process; one writer belongs to one task.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self
from urllib.parse import urlsplit

from core.errors import N_, NotFound, Unavailable

CHUNK = 512 * 1024  # bytes per read: a thread hop (disk) or a socket read (S3) per 512 KiB
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}"
_KEY = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
_PREFIX = re.compile(rf"^({_SEGMENT}/)*$")
PARTIAL = ".partial"  # LocalStorage: writers' files; never a key (a segment cannot start with ".")
WORK = ".work"  # LocalStorage: workspaces, on the same file system so that put_file is a rename


class BlobNotFound(NotFound):
    code = "blob_not_found"


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"
    message = N_("Files cannot be reached right now. Please try again in a moment.")


class WriterClosed(RuntimeError):
    """A :class:`BlobWriter` used after it was committed or aborted."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or len(key) > 512:
        raise ValueError(f"bad storage key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is ``""`` (everything) or whole segments ending with ``/`` (``documents/3/17/``)."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"bad storage prefix {prefix!r}")
    return prefix


@dataclass(frozen=True)
class BlobInfo:
    size: int
    etag: str  # a strong HTTP entity tag, quotes included: '"…"'
    modified: datetime  # aware, UTC

    @property
    def last_modified(self) -> str:
        """The HTTP date of ``modified`` (``Last-Modified``; ``If-Range`` may carry it)."""
        return formatdate(self.modified.timestamp(), usegmt=True)


class WriterState(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ABORTED = "aborted"


class BlobWriter(abc.ABC):
    """Bytes written in order, published whole by :meth:`commit` or dropped by :meth:`abort`.

    As an async context manager it aborts on the way out unless committed, so that an exception anywhere
    leaves nothing behind. ``size`` counts the bytes written so far.
    """

    def __init__(self, key: str | None) -> None:
        self.key = check_key(key) if key is not None else None
        self.size = 0
        self.state = WriterState.OPEN

    def _expect_open(self) -> None:
        if self.state != WriterState.OPEN:
            raise WriterClosed(f"the writer is {self.state.value}, not open")

    def _final_key(self, key: str | None) -> str:
        if key is None and self.key is None:
            raise ValueError("name the key when making the writer or when committing it")
        if key is not None and self.key is not None and key != self.key:
            raise ValueError(f"the writer was made for {self.key!r}, not {key!r}")
        return check_key(key or self.key or "")

    async def write(self, chunk: bytes) -> None:
        self._expect_open()
        if chunk:
            await self._write(chunk)
            self.size += len(chunk)

    async def commit(self, key: str | None = None) -> None:
        """Publish the bytes at ``key`` (or the key given to :meth:`Storage.writer`), whole."""
        self._expect_open()
        final = self._final_key(key)
        try:
            await self._commit(final)
        except BaseException:
            await self.abort()
            raise
        self.state = WriterState.COMMITTED

    async def abort(self) -> None:
        """Drop everything written; idempotent, and a no-op after commit."""
        if self.state != WriterState.OPEN:
            return
        self.state = WriterState.ABORTED
        await self._abort()

    @abc.abstractmethod
    async def _write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    async def _commit(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _abort(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.state == WriterState.OPEN:
            # Shielded: a cancelled request must still abort its multipart upload.
            await asyncio.shield(self.abort())


def _open(path: Path, mode: str) -> BinaryIO:
    file: BinaryIO = path.open(mode)  # type: ignore[assignment]  # binary modes only: "rb", "wb"
    return file


def _close_when_opened(opening: asyncio.Future[BinaryIO]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


async def open_file(path: Path, mode: str) -> BinaryIO:
    """Open ``path`` off the event loop. A task cancelled while the thread opens it (a document deleted while
    being processed) must not leak the file the thread then opens: it is closed as soon as it exists."""
    opening: asyncio.Future[BinaryIO] = asyncio.ensure_future(asyncio.to_thread(_open, path, mode))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_when_opened)
        raise


class Storage(abc.ABC):
    """Blobs by key (see the module docstring for the contract)."""

    chunk_size = CHUNK

    @abc.abstractmethod
    def writer(self, key: str | None = None) -> BlobWriter:
        """A streamed write; name ``key`` now when known (cheaper on S3) or at :meth:`BlobWriter.commit`."""

    @abc.abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store small ``data`` (an image, a page) at ``key`` whole."""

    async def put_file(self, key: str, path: Path) -> None:
        """Store the local file at ``path`` as ``key``, consuming it (on the disk a rename, or an upload)."""
        async with self.writer(key) as writer:
            with await open_file(path, "rb") as source:
                while chunk := await asyncio.to_thread(source.read, self.chunk_size):
                    await writer.write(chunk)
            await writer.commit()
        await asyncio.to_thread(path.unlink, True)

    @abc.abstractmethod
    async def stat(self, key: str) -> BlobInfo | None:
        """Size, ETag and time of the blob at ``key``; None when there is none."""

    @abc.abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """The bytes ``[start, end)`` in chunks (async generator; :class:`BlobNotFound` when missing).

        Close it (``contextlib.aclosing``) when stopping early, so the connection behind it is released.
        """

    async def get(self, key: str) -> bytes:
        """The whole blob, for small ones (a card photo)."""
        parts = []
        async with contextlib.aclosing(self.read(key)) as chunks:
            async for chunk in chunks:
                parts.append(chunk)
        return b"".join(parts)

    @abc.abstractmethod
    def local_file(self, key: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """A local file with the blob's bytes, for programs that need a path (the document worker); read
        only, valid inside the ``async with``, named as the key's last segment. On the disk it is the blob
        itself; elsewhere a copy."""

    @abc.abstractmethod
    def workspace(self) -> contextlib.AbstractAsyncContextManager[Path]:
        """A private local directory, removed afterwards, from which :meth:`put_file` is cheapest."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob at ``key``; nothing there is not an error."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob whose key starts with ``prefix`` (whole segments, ending with ``/``)."""

    @abc.abstractmethod
    async def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted; never unfinished writes."""

    @abc.abstractmethod
    async def unfinished(self) -> list[str]:
        """Writes neither committed nor aborted (under way, or abandoned by a process that died)."""

    @abc.abstractmethod
    async def sweep(self, older_than: float) -> int:
        """Remove unfinished writes begun more than ``older_than`` seconds ago; how many went."""

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        return None


# --- this box's disk ----------------------------------------------------------------------------------------


def _etag(size: int, mtime: float) -> str:
    # The ETag Starlette's FileResponse gave these files before, so browsers' caches stay valid.
    return f'"{hashlib.md5(f"{mtime}-{size}".encode(), usedforsecurity=False).hexdigest()}"'


class LocalWriter(BlobWriter):
    """A ``.partial`` file under the storage's directory, renamed into place at commit."""

    def __init__(self, storage: LocalStorage, key: str | None) -> None:
        super().__init__(key)
        self._storage = storage
        partial = storage.root / PARTIAL
        partial.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="write-", suffix=".part", dir=partial)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")

    async def _write(self, chunk: bytes) -> None:
        # Chunks are at most tens of KB and land in the page cache; not worth a thread hop each.
        self._file.write(chunk)

    async def _commit(self, key: str) -> None:
        self._file.close()
        destination = self._storage.path(key)
        await asyncio.to_thread(_move_into_place, self.path, destination)

    async def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)


def _move_into_place(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, destination)  # atomic: readers see the old file or the new one


class LocalStorage(Storage):
    """Blobs as files under ``root``: key ``a/b/c`` is ``root/a/b/c``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def writer(self, key: str | None = None) -> BlobWriter:
        return LocalWriter(self, key)

    async def put(self, key: str, data: bytes) -> None:
        async with self.writer(key) as writer:
            await writer.write(data)
            await writer.commit()

    async def put_file(self, key: str, path: Path) -> None:
        destination = self.path(key)

        def move() -> None:
            try:
                _move_into_place(path, destination)
            except OSError:  # another file system: copy next to the destination first, then rename
                partial = self.root / PARTIAL
                partial.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=partial)
                os.close(fd)
                try:
                    shutil.copyfile(path, name)
                    _move_into_place(Path(name), destination)
                finally:
                    Path(name).unlink(missing_ok=True)
                path.unlink()

        await asyncio.to_thread(move)

    async def stat(self, key: str) -> BlobInfo | None:
        path = self.path(key)
        try:
            result = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        modified = datetime.fromtimestamp(result.st_mtime, UTC)
        return BlobInfo(result.st_size, _etag(result.st_size, result.st_mtime), modified)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        path = self.path(key)
        try:
            file = await open_file(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise BlobNotFound() from exc
        try:
            await asyncio.to_thread(file.seek, start)
            position = start
            while end is None or position < end:
                want = self.chunk_size if end is None else min(self.chunk_size, end - position)
                chunk = await asyncio.to_thread(file.read, want)
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
        finally:
            file.close()

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        path = self.path(key)
        if not await asyncio.to_thread(path.is_file):
            raise BlobNotFound()
        yield path

    @contextlib.asynccontextmanager
    async def workspace(self) -> AsyncIterator[Path]:
        work = self.root / WORK
        work.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="work-", dir=work))
        try:
            yield directory
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, True)

    async def delete_prefix(self, prefix: str) -> None:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete everything")
        await asyncio.to_thread(shutil.rmtree, self.root / prefix, True)

    async def keys(self, prefix: str = "") -> list[str]:
        base = self.root / check_prefix(prefix)

        def walk() -> list[str]:
            if not base.is_dir():
                return []
            keys = []
            for path in base.rglob("*"):
                relative = path.relative_to(self.root).as_posix()
                if path.is_file() and _KEY.match(relative):  # leaves out .partial/ and .work/
                    keys.append(relative)
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def unfinished(self) -> list[str]:
        partial = self.root / PARTIAL
        return await asyncio.to_thread(
            lambda: sorted(p.name for p in partial.iterdir()) if partial.is_dir() else []
        )

    async def sweep(self, older_than: float) -> int:
        cutoff = time.time() - older_than

        def remove_old() -> int:
            removed = 0
            for folder in (self.root / PARTIAL, self.root / WORK):
                if not folder.is_dir():
                    continue
                for path in folder.iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < cutoff:
                            if path.is_dir():
                                shutil.rmtree(path, ignore_errors=True)
                            else:
                                path.unlink(missing_ok=True)
                            removed += 1
            return removed

        return await asyncio.to_thread(remove_old)


# --- memory (tests) -----------------------------------------------------------------------------------------


@dataclass
class _Stored:
    data: bytes
    modified: datetime
    serial: int


class MemoryWriter(BlobWriter):
    def __init__(self, storage: MemoryStorage, key: str | None) -> None:
        super().__init__(key)
        self._storage = storage
        self._parts: list[bytes] = []
        self.name = f"write-{next(storage.serials)}"
        storage.writing[self.name] = time.time()

    async def _write(self, chunk: bytes) -> None:
        self._parts.append(bytes(chunk))

    async def _commit(self, key: str) -> None:
        self._storage.keep(key, b"".join(self._parts))
        self._storage.writing.pop(self.name, None)

    async def _abort(self) -> None:
        self._parts.clear()
        self._storage.writing.pop(self.name, None)


class MemoryStorage(Storage):
    """Blobs in a dict; for tests of code above the storage, held to the same contract."""

    def __init__(self) -> None:
        import itertools

        self.blobs: dict[str, _Stored] = {}
        self.writing: dict[str, float] = {}
        self.serials = itertools.count(1)

    def keep(self, key: str, data: bytes) -> None:
        self.blobs[check_key(key)] = _Stored(data, datetime.now(UTC), next(self.serials))

    def writer(self, key: str | None = None) -> BlobWriter:
        return MemoryWriter(self, key)

    async def put(self, key: str, data: bytes) -> None:
        self.keep(key, bytes(data))

    async def stat(self, key: str) -> BlobInfo | None:
        stored = self.blobs.get(check_key(key))
        if stored is None:
            return None
        return BlobInfo(len(stored.data), f'"m{stored.serial}"', stored.modified)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        stored = self.blobs.get(check_key(key))
        if stored is None:
            raise BlobNotFound()
        data = stored.data[start:end]
        for offset in range(0, len(data), self.chunk_size):
            yield data[offset : offset + self.chunk_size]

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        data = await self.get(key)
        async with self.workspace() as directory:
            path = directory / key.rsplit("/", 1)[-1]  # the name, extension included, for the programs
            path.write_bytes(data)
            yield path

    @contextlib.asynccontextmanager
    async def workspace(self) -> AsyncIterator[Path]:
        directory = Path(tempfile.mkdtemp(prefix="tsunagu-work-"))
        try:
            yield directory
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def delete(self, key: str) -> None:
        self.blobs.pop(check_key(key), None)

    async def delete_prefix(self, prefix: str) -> None:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete everything")
        for key in [key for key in self.blobs if key.startswith(prefix)]:
            del self.blobs[key]

    async def keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        return sorted(key for key in self.blobs if key.startswith(prefix))

    async def unfinished(self) -> list[str]:
        return sorted(self.writing)

    async def sweep(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        old = [name for name, began in self.writing.items() if began < cutoff]
        for name in old:
            del self.writing[name]
        return len(old)


# --- upkeep ------------------------------------------------------------------------------------------------

# No write lasts a day: uploads must keep a minimum pace (50 MB at 8 KiB/s is under two hours), and a
# recording is at most two hours. A write older than this was abandoned by a process that died.
ABANDONED_AFTER = 24 * 3600.0


async def sweep_abandoned(storage: Storage, older_than: float = ABANDONED_AFTER) -> int:
    """Remove writes abandoned by a process that died (every node runs it when it starts); how many went, 0
    when the storage cannot be reached (the next start tries again)."""
    try:
        return await storage.sweep(older_than)
    except StorageUnavailable:
        return 0


# --- choosing one -------------------------------------------------------------------------------------------


def open_storage(url: str | None, data_dir: Path, *, access_key: str = "", secret_key: str = "") -> Storage:
    """The storage ``STORAGE_URL`` names: unset → ``data_dir`` on this box; ``file:///path`` → that directory;
    ``s3://bucket[/prefix][?endpoint=…&region=…&part_mb=…]`` → S3-compatible object storage, with the
    credentials given (the settings' ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) or else botocore's own
    sources (the process environment, a profile, an instance role) — never from the URL."""
    if not url:
        return LocalStorage(data_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("STORAGE_URL: a file: URL names a local directory (file:///var/lib/tsunagu)")
        return LocalStorage(Path(parts.path))
    if parts.scheme == "s3":
        from core.s3_storage import S3Storage

        return S3Storage.from_url(url, access_key=access_key, secret_key=secret_key)
    raise ValueError(f"STORAGE_URL: unknown scheme {parts.scheme!r} (use s3:// or file://)")
