"""Blob storage in S3-compatible object storage (AWS S3, Ceph RGW, SeaweedFS, MinIO…), through aiobotocore.

The contract is :mod:`core.storage`'s; here is how this implementation keeps it:

- A key is the object ``<prefix><key>`` in one bucket; the prefix lets several installations share a bucket.
- A writer keeps at most one part (``part_size``, ≥ 5 MiB, S3's smallest part) in memory. A blob that ends
  within the first part is sent with one PutObject at commit; a longer one becomes a multipart upload as soon
  as the first part is full, one UploadPart per part while the bytes keep coming, completed at commit. Its
  parts go to the final key when the writer was made with it, else to ``<prefix>.partial/<random>``, copied
  to the final key at commit (CopyObject, server-side; UploadPartCopy above 5 GiB) and then removed.
  Aborting — an error, a cancelled request, a sender that went away — aborts the multipart upload, so no
  object and no parts remain. A process killed mid-write leaves the multipart upload behind:
  :meth:`S3Storage.unfinished` lists it and :meth:`S3Storage.sweep` aborts it (a bucket lifecycle rule
  ``AbortIncompleteMultipartUpload`` does the same on AWS).
- Reads are GetObject with ``Range: bytes=start-(end-1)``, streamed from the socket in chunks.
- Every botocore/aiohttp error is translated here: a missing key → :class:`~core.storage.BlobNotFound`,
  anything else → :class:`~core.storage.StorageUnavailable`.

Checksums are computed only where S3 requires them (``when_required``): servers other than AWS often reject
the newer trailing checksums botocore sends by default. Credentials come from botocore's usual sources
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from the settings or the environment, a profile, an instance
role), never from ``STORAGE_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog

from core.storage import (
    BlobInfo,
    BlobNotFound,
    BlobWriter,
    Storage,
    StorageUnavailable,
    check_key,
    check_prefix,
    open_file,
)

if TYPE_CHECKING:
    from aiobotocore.session import AioSession
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

log = structlog.get_logger("tsunagu.storage")

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3's smallest part but the last
DEFAULT_PART = 8 * MIB
COPY_LIMIT = 5 * 1024 * MIB  # CopyObject's largest source; above it, UploadPartCopy
PARTIAL = ".partial/"
_TOKEN = "AWS_SESSION_TOKEN"
_MISSING = {"404", "NoSuchKey", "NotFound"}


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Library errors become ours at this edge: a missing key is BlobNotFound, the rest StorageUnavailable."""
    from aiohttp import ClientError as HttpError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise BlobNotFound() from exc
        log.warning("storage refused", action=what, code=code)
        raise StorageUnavailable() from exc
    except (BotoCoreError, HttpError, TimeoutError, OSError) as exc:
        log.warning("storage unreachable", action=what, error=type(exc).__name__)
        raise StorageUnavailable() from exc


class S3Writer(BlobWriter):
    def __init__(self, storage: S3Storage, key: str | None) -> None:
        super().__init__(key)
        self._storage = storage
        self._buffer = io.BytesIO()  # the part being filled; botocore streams a file body, never copies it
        self._object: str | None = None  # the object the multipart upload writes to
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def buffered(self) -> int:
        """Bytes held in memory: the part being filled, never more than ``part_size``."""
        return self._buffer.tell()

    def _take(self) -> io.BytesIO:
        part, self._buffer = self._buffer, io.BytesIO()
        part.seek(0)
        return part

    async def _write(self, chunk: bytes) -> None:
        size = self._storage.part_size
        rest = memoryview(chunk)
        while len(rest):
            room = size - self._buffer.tell()
            self._buffer.write(rest[:room])
            rest = rest[room:]
            if self._buffer.tell() >= size:
                await self._send_part(self._take())

    async def _send_part(self, data: io.BytesIO) -> None:
        client = await self._storage.client()
        bucket = self._storage.bucket
        if self._upload_id is None:
            self._object = self._storage.name(self.key) if self.key else self._storage.partial_name()
            with _translated("create_multipart_upload"):
                created = await client.create_multipart_upload(Bucket=bucket, Key=self._object)
            self._upload_id = created["UploadId"]
        assert self._object is not None
        number = len(self._parts) + 1
        with _translated("upload_part"):
            sent = await client.upload_part(
                Bucket=bucket, Key=self._object, UploadId=self._upload_id, PartNumber=number, Body=data
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def _commit(self, key: str) -> None:
        client = await self._storage.client()
        bucket, final = self._storage.bucket, self._storage.name(key)
        if self._upload_id is None:  # it all fitted in one part: one PUT, straight to its key
            with _translated("put_object"):
                await client.put_object(Bucket=bucket, Key=final, Body=self._take())
            return
        if self.buffered:
            await self._send_part(self._take())
        assert self._object is not None
        with _translated("complete_multipart_upload"):
            await client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._object,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
            )
        self._upload_id = None
        if self._object != final:
            try:
                await self._storage.copy(self._object, final, self.size)
            finally:
                with contextlib.suppress(StorageUnavailable):
                    await self._storage.remove_object(self._object)

    async def _abort(self) -> None:
        self._buffer = io.BytesIO()
        if self._upload_id is None:
            return
        client = await self._storage.client()
        upload_id, self._upload_id = self._upload_id, None
        try:
            with _translated("abort_multipart_upload"):
                await client.abort_multipart_upload(
                    Bucket=self._storage.bucket, Key=self._object or "", UploadId=upload_id
                )
        except StorageUnavailable:
            # Left for sweep() (or the bucket's lifecycle rule); nothing of it is visible meanwhile.
            log.warning("multipart upload left behind", key=self._object, upload=upload_id)


class S3Storage(Storage):
    """Blobs as objects ``<prefix><key>`` in ``bucket``; one aiobotocore client, made on first use."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART,
        path_style: bool | None = None,
        max_connections: int = 50,
        max_attempts: int = 3,
        access_key: str = "",
        secret_key: str = "",
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes (S3's smallest part)")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = check_prefix(prefix)
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        # Servers other than AWS are usually addressed by path (http://host:port/bucket/key).
        self.path_style = endpoint_url is not None if path_style is None else path_style
        self.max_connections = max_connections
        self.max_attempts = max_attempts
        self._access_key, self._secret_key = access_key, secret_key
        self._client: S3Client | None = None
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, access_key: str = "", secret_key: str = "") -> S3Storage:
        """``s3://bucket[/prefix][?endpoint=http://host:port&region=…&part_mb=8&addressing=path|virtual]``."""
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ValueError(
                "STORAGE_URL must not carry credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
        if not parts.hostname:
            raise ValueError("STORAGE_URL: s3://bucket[/prefix] names a bucket")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region", "part_mb", "addressing"}
        if unknown:
            raise ValueError(f"STORAGE_URL: unknown parameters {sorted(unknown)}")
        addressing = query.get("addressing")
        if addressing not in (None, "path", "virtual"):
            raise ValueError("STORAGE_URL: addressing is path or virtual")
        return cls(
            parts.netloc,  # bucket names are lower case; hostname would lower it anyway
            parts.path.strip("/") + "/" if parts.path.strip("/") else "",
            endpoint_url=query.get("endpoint"),
            region=query.get("region"),
            part_size=int(float(query.get("part_mb", DEFAULT_PART / MIB)) * MIB),
            path_style=None if addressing is None else addressing == "path",
            access_key=access_key,
            secret_key=secret_key,
        )

    # --- plumbing -----------------------------------------------------------------------------------------

    async def client(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from aiobotocore.config import AioConfig

                config = AioConfig(
                    s3={"addressing_style": "path" if self.path_style else "auto"},
                    max_pool_connections=self.max_connections,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"max_attempts": self.max_attempts, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                )
                with _translated("connect"):
                    self._client = await self._stack.enter_async_context(
                        _session().create_client(
                            "s3",
                            endpoint_url=self.endpoint_url,
                            region_name=self.region,
                            config=config,
                            # Given, or read now (not cached in the shared session); none: botocore's sources.
                            aws_access_key_id=self._access_key or os.environ.get("AWS_ACCESS_KEY_ID"),
                            aws_secret_access_key=self._secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY"),
                            aws_session_token=None
                            if self._access_key
                            else os.environ.get("AWS_SESSION_TOKEN"),
                        )
                    )
        assert self._client is not None
        return self._client

    def name(self, key: str | None) -> str:
        return self.prefix + check_key(key or "")

    def partial_name(self) -> str:
        return f"{self.prefix}{PARTIAL}{secrets.token_hex(16)}"

    async def copy(self, source: str, destination: str, size: int) -> None:
        client = await self.client()
        if size <= COPY_LIMIT:
            with _translated("copy_object"):
                await client.copy_object(
                    Bucket=self.bucket, Key=destination, CopySource={"Bucket": self.bucket, "Key": source}
                )
            return
        with _translated("create_multipart_upload"):
            upload_id = (await client.create_multipart_upload(Bucket=self.bucket, Key=destination))[
                "UploadId"
            ]
        parts = []
        try:
            for number, start in enumerate(range(0, size, COPY_LIMIT), start=1):
                end = min(size, start + COPY_LIMIT) - 1
                with _translated("upload_part_copy"):
                    copied = await client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=destination,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": source},
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            with _translated("complete_multipart_upload"):
                await client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=destination,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=destination, UploadId=upload_id)
            raise

    async def remove_object(self, name: str) -> None:
        client = await self.client()
        with _translated("delete_object"):
            await client.delete_object(Bucket=self.bucket, Key=name)

    # --- the contract -------------------------------------------------------------------------------------

    def writer(self, key: str | None = None) -> BlobWriter:
        return S3Writer(self, key)

    async def put(self, key: str, data: bytes) -> None:
        client = await self.client()
        with _translated("put_object"):
            await client.put_object(Bucket=self.bucket, Key=self.name(key), Body=bytes(data))

    async def stat(self, key: str) -> BlobInfo | None:
        client = await self.client()
        try:
            with _translated("head_object"):
                head = await client.head_object(Bucket=self.bucket, Key=self.name(key))
        except BlobNotFound:
            return None
        etag = head.get("ETag") or '""'
        modified = head.get("LastModified") or datetime.now(UTC)
        return BlobInfo(int(head["ContentLength"]), etag, modified.astimezone(UTC))

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        if end is not None and end <= start:
            return
        client = await self.client()
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self.name(key)}
        if start or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with _translated("get_object"):
                response = await client.get_object(**arguments)
        except StorageUnavailable as exc:
            if _is_invalid_range(exc):  # start at or past the end: nothing to read
                if await self.stat(key) is None:
                    raise BlobNotFound() from exc
                return
            raise
        async with response["Body"] as body:
            while True:
                with _translated("read"):
                    chunk = await body.read(self.chunk_size)
                if not chunk:
                    return
                yield chunk

    @contextlib.asynccontextmanager
    async def local_file(self, key: str) -> AsyncIterator[Path]:
        async with self.workspace() as directory:
            path = directory / key.rsplit("/", 1)[-1]  # the name, extension included, for the programs
            with await open_file(path, "wb") as file:
                async with contextlib.aclosing(self.read(key)) as chunks:
                    async for chunk in chunks:
                        await asyncio.to_thread(file.write, chunk)
            yield path

    @contextlib.asynccontextmanager
    async def workspace(self) -> AsyncIterator[Path]:
        directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="tsunagu-work-"))
        try:
            yield directory
        finally:
            import shutil

            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def delete(self, key: str) -> None:
        await self.remove_object(self.name(key))

    async def delete_prefix(self, prefix: str) -> None:
        if not check_prefix(prefix):
            raise ValueError("refusing to delete everything")
        client = await self.client()
        names = await self._names(self.prefix + prefix)
        for offset in range(0, len(names), 1000):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": name} for name in names[offset : offset + 1000]]
            with _translated("delete_objects"):
                await client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    async def _names(self, prefix: str) -> list[str]:
        client = await self.client()
        names: list[str] = []
        with _translated("list_objects_v2"):
            async for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                names += [item["Key"] for item in page.get("Contents", [])]
        return names

    async def keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        names = await self._names(self.prefix + prefix)
        start = len(self.prefix)
        return sorted(name[start:] for name in names if not name[start:].startswith(PARTIAL))

    async def _uploads(self) -> list[tuple[str, str, datetime]]:
        client = await self.client()
        found: list[tuple[str, str, datetime]] = []
        with _translated("list_multipart_uploads"):
            async for page in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated") or datetime.now(UTC)
                    found.append((upload.get("Key", ""), upload.get("UploadId", ""), initiated))
        return found

    async def unfinished(self) -> list[str]:
        uploads = [f"{name} (upload {upload_id})" for name, upload_id, _ in await self._uploads()]
        leftovers = await self._names(self.prefix + PARTIAL)  # copied but not yet removed
        return sorted(uploads + leftovers)

    async def sweep(self, older_than: float) -> int:
        client = await self.client()
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        removed = 0
        for name, upload_id, initiated in await self._uploads():
            if initiated.astimezone(UTC) < cutoff:
                with _translated("abort_multipart_upload"), contextlib.suppress(BlobNotFound):
                    await client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
                removed += 1
        with _translated("list_objects_v2"):
            async for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + PARTIAL
            ):
                for item in page.get("Contents", []):
                    if item["LastModified"].astimezone(UTC) < cutoff:
                        await self.remove_object(item["Key"])
                        removed += 1
        return removed

    async def aclose(self) -> None:
        self._client = None
        with contextlib.suppress(Exception):
            await self._stack.aclose()


_SESSION: AioSession | None = None


def _session() -> AioSession:
    """One botocore session per process: it loads S3's service model once (0.5 s), not per client."""
    global _SESSION
    if _SESSION is None:
        from aiobotocore.session import get_session

        _SESSION = get_session()
    return _SESSION


def _is_invalid_range(exc: StorageUnavailable) -> bool:
    from botocore.exceptions import ClientError

    cause = exc.__cause__
    return isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == "InvalidRange"
