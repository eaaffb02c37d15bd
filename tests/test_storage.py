"""Blob storage: one contract (core/storage.py) held against memory, this box's disk and a real S3 server
(SeaweedFS on loopback), then what is particular to each."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.s3_storage import MIN_PART, S3Storage
from core.storage import (
    ABANDONED_AFTER,
    BlobNotFound,
    LocalStorage,
    MemoryStorage,
    Storage,
    StorageUnavailable,
    WriterClosed,
    open_file,
    open_storage,
)
from tests.harness.ports import free_port
from tests.harness.s3 import S3Server
from web.app import create_app
from web.settings import Settings

MB = 1024 * 1024


@pytest.fixture(params=["memory", "local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    made: Storage
    if request.param == "memory":
        made = MemoryStorage()
    elif request.param == "local":
        made = LocalStorage(tmp_path / "blobs")
    else:
        made = s3_storage(request.getfixturevalue("s3_server"), request.getfixturevalue("monkeypatch"))
    yield made
    await made.aclose()


def s3_storage(server: S3Server, monkeypatch: pytest.MonkeyPatch, part_size: int = MIN_PART) -> S3Storage:
    for name, value in server.environment.items():
        monkeypatch.setenv(name, value)
    storage = open_storage(server.url(f"t-{secrets.token_hex(6)}") + f"&part_mb={part_size / MB}", Path("/"))
    assert isinstance(storage, S3Storage)
    return storage


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


# --- the contract -------------------------------------------------------------------------------------------


async def test_put_then_read_stat_get_and_list(storage: Storage) -> None:
    assert await storage.stat("cards/1/photo.jpg") is None
    await storage.put("cards/1/photo.jpg", b"jpeg bytes")
    await storage.put("cards/1/1.jpg", b"another")
    await storage.put("cards/2/photo.jpg", b"not this one")
    info = await storage.stat("cards/1/photo.jpg")
    assert info is not None and info.size == len(b"jpeg bytes")
    assert info.etag.startswith('"') and info.etag.endswith('"') and len(info.etag) > 2
    assert info.modified.tzinfo is not None and info.last_modified.endswith("GMT")
    assert await storage.get("cards/1/photo.jpg") == b"jpeg bytes"
    assert await storage.keys("cards/1/") == ["cards/1/1.jpg", "cards/1/photo.jpg"]
    assert await storage.keys() == ["cards/1/1.jpg", "cards/1/photo.jpg", "cards/2/photo.jpg"]


async def test_a_missing_key(storage: Storage) -> None:
    with pytest.raises(BlobNotFound):
        await storage.get("files/1/room/9")
    with pytest.raises(BlobNotFound):
        async with storage.local_file("files/1/room/9"):
            pass
    await storage.delete("files/1/room/9")  # not an error
    await storage.delete_prefix("files/1/")
    assert await storage.keys("files/") == []


async def test_streamed_write_appears_whole_only_at_commit(storage: Storage) -> None:
    data = os.urandom(2 * MIN_PART + 12345)  # three S3 parts, the last one short
    writer = storage.writer()
    for piece in pieces(data, 64 * 1024):
        await writer.write(piece)
    assert writer.size == len(data)
    assert await storage.keys() == []  # nothing visible before the commit
    assert await storage.unfinished() != []
    await writer.commit("files/1/room-a/7")
    assert await storage.unfinished() == []
    assert await storage.keys() == ["files/1/room-a/7"]
    stored = await collect(storage.read("files/1/room-a/7"))
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    info = await storage.stat("files/1/room-a/7")
    assert info is not None and info.size == len(data)


async def test_writer_named_up_front_and_a_small_one(storage: Storage) -> None:
    big = os.urandom(MIN_PART + 1)
    async with storage.writer("recordings/1/r/a.webm") as writer:
        await writer.write(big)
        await writer.commit()
    async with storage.writer() as small:
        await small.write(b"tiny")
        await small.commit("files/1/r/1")
    assert await storage.get("recordings/1/r/a.webm") == big
    assert await storage.get("files/1/r/1") == b"tiny"
    with pytest.raises(ValueError):
        async with storage.writer("files/1/r/2") as named:
            await named.commit("files/1/r/3")
    assert await storage.unfinished() == []


async def test_abort_and_an_exception_leave_nothing(storage: Storage) -> None:
    aborted = storage.writer()
    await aborted.write(os.urandom(MIN_PART + 10))  # on S3 a multipart upload has begun
    await aborted.abort()
    await aborted.abort()  # idempotent
    with pytest.raises(WriterClosed):
        await aborted.write(b"more")
    with pytest.raises(WriterClosed):
        await aborted.commit("files/1/r/1")
    with pytest.raises(RuntimeError, match="interrupted"):
        async with storage.writer("files/1/r/2") as writer:
            await writer.write(os.urandom(MIN_PART + 10))
            raise RuntimeError("interrupted")
    assert await storage.keys() == [] and await storage.unfinished() == []


async def test_a_commit_twice_is_refused(storage: Storage) -> None:
    writer = storage.writer()
    await writer.write(b"x")
    await writer.commit("files/1/r/1")
    with pytest.raises(WriterClosed):
        await writer.commit("files/1/r/1")
    await writer.abort()  # after commit: nothing happens
    assert await storage.get("files/1/r/1") == b"x"


async def test_replacing_a_key_is_whole(storage: Storage) -> None:
    await storage.put("cards/1/a.jpg", b"old" * 1000)
    await storage.put("cards/1/a.jpg", b"new")
    assert await storage.get("cards/1/a.jpg") == b"new"


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (0, None), (10, 20), (MB - 1, MB + 1), (MB + 5, None), (0, MB + 100), (17, 10**9)],
)
async def test_range_reads(storage: Storage, start: int, end: int | None) -> None:
    data = os.urandom(MB + 100)
    await storage.put("documents/1/2/original.pdf", data)
    got = await collect(storage.read("documents/1/2/original.pdf", start, end))
    assert got == data[start:end]


async def test_range_reads_past_the_end_and_chunking(storage: Storage) -> None:
    data = os.urandom(3 * storage.chunk_size + 7)
    await storage.put("files/1/r/1", data)
    assert await collect(storage.read("files/1/r/1", len(data))) == b""
    assert await collect(storage.read("files/1/r/1", len(data) + 10)) == b""
    chunks = [chunk async for chunk in storage.read("files/1/r/1")]
    assert all(len(chunk) <= storage.chunk_size for chunk in chunks) and b"".join(chunks) == data
    with pytest.raises(BlobNotFound):
        await collect(storage.read("files/1/r/2", 5))


async def test_stopping_a_read_early_releases_it(storage: Storage) -> None:
    await storage.put("files/1/r/1", os.urandom(4 * storage.chunk_size))
    for _ in range(60):  # more than the S3 client's connection pool: each read must give its socket back
        async with contextlib.aclosing(storage.read("files/1/r/1")) as chunks:
            async for _chunk in chunks:
                break
    assert len(await storage.get("files/1/r/1")) == 4 * storage.chunk_size


async def test_delete_and_delete_prefix(storage: Storage) -> None:
    for key in ("documents/1/2/original.pdf", "documents/1/2/pages/1.jpg", "documents/1/20/original.pdf"):
        await storage.put(key, b"x")
    await storage.delete_prefix("documents/1/2/")
    assert await storage.keys() == ["documents/1/20/original.pdf"]
    await storage.delete("documents/1/20/original.pdf")
    assert await storage.keys() == []
    with pytest.raises(ValueError):
        await storage.delete_prefix("")


async def test_put_file_consumes_and_local_file_reads(storage: Storage) -> None:
    data = os.urandom(MIN_PART + 3)
    async with storage.workspace() as work:
        page = work / "1.jpg"
        page.write_bytes(data)
        await storage.put_file("documents/1/2/pages/1.jpg", page)
        assert not page.exists()
    assert not work.exists()
    async with storage.local_file("documents/1/2/pages/1.jpg") as path:
        assert path.read_bytes() == data


async def test_many_writers_at_once(storage: Storage) -> None:
    blobs = {f"files/1/r/{n}": os.urandom(MIN_PART + n) for n in range(1, 5)}
    start = asyncio.Event()

    async def write(key: str, data: bytes) -> None:
        async with storage.writer() as writer:
            await start.wait()  # a barrier: every writer streams at the same time
            for piece in pieces(data, 256 * 1024):
                await writer.write(piece)
            await writer.commit(key)

    tasks = [asyncio.create_task(write(key, data)) for key, data in blobs.items()]
    await asyncio.sleep(0)
    start.set()
    await asyncio.gather(*tasks)
    assert await storage.keys() == sorted(blobs)
    for key, data in blobs.items():
        assert await storage.get(key) == data


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "../a", "a/../b", ".partial/x", "a b", "a/.hidden"])
async def test_malformed_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        await storage.put(key, b"x")
    with pytest.raises(ValueError):
        await storage.stat(key)


async def test_an_abandoned_write_is_swept(storage: Storage) -> None:
    writer = storage.writer()
    await writer.write(os.urandom(MIN_PART + 1))  # then its process "dies": no commit, no abort
    assert len(await storage.unfinished()) == 1
    assert await storage.sweep(older_than=3600) == 0  # too young
    assert await storage.sweep(older_than=-60) == 1
    assert await storage.unfinished() == [] and await storage.keys() == []
    await writer.abort()  # only so that this test's own writer object closes its file


async def test_a_node_sweeps_writes_abandoned_a_day_ago_when_it_starts(settings: Settings) -> None:
    """A node killed mid-upload leaves a part file; the next start removes it, and never a write under way."""
    partial = settings.data_dir / ".partial"
    partial.mkdir()
    abandoned, under_way = partial / "write-old.part", partial / "write-new.part"
    abandoned.write_bytes(b"half")
    under_way.write_bytes(b"half")
    day_ago = time.time() - ABANDONED_AFTER - 60
    os.utime(abandoned, (day_ago, day_ago))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        for _ in range(250):  # bounded: the sweep runs in the background, 5 s at most
            if not abandoned.exists():
                break
            await asyncio.sleep(0.02)
    assert not abandoned.exists() and under_way.exists()


# --- each implementation ------------------------------------------------------------------------------------


async def test_local_keys_are_the_old_layout(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("documents/3/17/pages/1.jpg", b"page")
    assert (tmp_path / "documents" / "3" / "17" / "pages" / "1.jpg").read_bytes() == b"page"
    async with storage.local_file("documents/3/17/pages/1.jpg") as path:
        assert path == tmp_path / "documents/3/17/pages/1.jpg"  # the worker reads the file itself


async def test_local_put_file_from_a_workspace_is_a_rename(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    async with storage.workspace() as work:
        page = work / "1.jpg"
        page.write_bytes(b"jpeg")
        inode = page.stat().st_ino
        await storage.put_file("documents/1/1/pages/1.jpg", page)
    assert (tmp_path / "documents/1/1/pages/1.jpg").stat().st_ino == inode


def test_storage_urls(tmp_path: Path) -> None:
    assert isinstance(open_storage(None, tmp_path), LocalStorage)
    local = open_storage(f"file://{tmp_path}/blobs", tmp_path)
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "blobs"
    s3 = open_storage("s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu&part_mb=16", tmp_path)
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.endpoint_url, s3.region) == (
        "bucket",
        "some/prefix/",
        "http://127.0.0.1:9000",
        "eu",
    )
    assert s3.part_size == 16 * MB and s3.path_style
    assert not S3Storage.from_url("s3://bucket").path_style  # AWS itself: virtual-hosted addressing
    for bad in (
        "s3://key:secret@bucket",
        "s3://bucket?part_mb=1",
        "s3://bucket?colour=red",
        "ftp://x",
        "s3://",
    ):
        with pytest.raises(ValueError):
            open_storage(bad, tmp_path)


async def test_s3_parts_stay_bounded_in_memory(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16 MB stream through a 5 MiB writer never holds more than one part (plus the chunk arriving)."""
    storage = s3_storage(s3_server, monkeypatch)
    digest = hashlib.sha256()
    peak = 0
    try:
        writer = storage.writer()
        for _ in range(16 * MB // (256 * 1024)):
            piece = os.urandom(256 * 1024)
            digest.update(piece)
            await writer.write(piece)
            peak = max(peak, writer.buffered)  # type: ignore[attr-defined]
        await writer.commit("recordings/1/r/long.webm")
        assert peak < MIN_PART
        read = hashlib.sha256()
        async for chunk in storage.read("recordings/1/r/long.webm"):
            read.update(chunk)
        assert read.digest() == digest.digest()
    finally:
        await storage.aclose()


async def test_s3_unreachable_is_storage_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    port = free_port()
    storage = S3Storage("bucket", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", max_attempts=1)
    try:
        with pytest.raises(StorageUnavailable):
            await storage.stat("files/1/r/1")
        with pytest.raises(StorageUnavailable):
            await storage.put("files/1/r/1", b"x")
        with pytest.raises(StorageUnavailable):
            await collect(storage.read("files/1/r/1"))
    finally:
        await storage.aclose()


async def test_s3_wrong_credentials_are_storage_unavailable(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = s3_storage(s3_server, monkeypatch)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    try:
        with pytest.raises(StorageUnavailable):
            await storage.put("files/1/r/1", b"x")
    finally:
        await storage.aclose()


async def test_a_task_cancelled_while_a_file_opens_leaves_no_open_file(tmp_path: Path) -> None:
    # A document deleted while being processed cancels the task that is opening its work file; the file the
    # thread opens after the cancellation must still be closed (else an unclosed-file warning, a leaked fd).
    path = tmp_path / "original.pdf"
    fds_before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for attempt in range(60):
            task = asyncio.ensure_future(open_file(path, "wb"))
            for _ in range(1 + attempt % 6):  # cancelled before, while and after the thread opens it
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                (await task).close()
        await asyncio.sleep(0.2)  # let the threads finish and their callbacks run
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(os.listdir("/proc/self/fd")) <= fds_before
