"""Serving a stored blob (``core.storage``) over HTTP, streamed, with Range requests as Starlette's
``FileResponse`` answers them — whichever storage holds the bytes.

- ``Accept-Ranges: bytes``, ``ETag``, ``Last-Modified`` and ``Content-Length`` from the blob's stat.
- ``Range: bytes=a-b`` (also ``a-`` and ``-n``) → 206 with ``Content-Range``; several ranges → 206
  ``multipart/byteranges`` (overlaps merged, at most ``MAX_RANGES``, or the whole blob); a range that starts
  past the end → 416 with ``Content-Range: bytes */size``; a malformed one → 400.
- ``If-Range`` with the current ETag or Last-Modified honours the Range; anything else (a weak or stale
  validator) gets the whole blob with 200, so a resumed download never mixes two versions.
- ``HEAD`` gets the headers only. The bytes come from storage as the client takes them (one chunk in memory);
  a client that goes away stops the read.

Recordings (issue 14) are served the same way, so a browser's ``<video>`` can seek in them.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from core.errors import NotFound
from core.storage import BlobInfo, Storage

MAX_RANGES = 100  # more ranges than this: the whole blob (as Starlette does)


class _Malformed(Exception):
    pass


class _Unsatisfiable(Exception):
    pass


def parse_ranges(header: str, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` pairs from a ``Range`` header, merged and sorted when several; ``[]`` means the whole
    blob. :class:`_Malformed` (400) or :class:`_Unsatisfiable` (416) otherwise."""
    units, _, spec = header.partition("=")
    if not _ or units.strip().lower() != "bytes":
        raise _Malformed()
    if spec.count(",") + 1 > MAX_RANGES:
        return []
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        first, last = first.strip(), last.strip()
        if not dash or not (first or last):
            continue
        if not (first.isdigit() or not first) or not (last.isdigit() or not last):
            continue  # not numeric: ignored
        if first:
            start = int(first)
            end = min(int(last) + 1, size) if last else size
        else:
            start, end = max(size - int(last), 0), size
        ranges.append((start, end))
    if not ranges:
        raise _Malformed()
    if any(not 0 <= start < size for start, _end in ranges):
        raise _Unsatisfiable()
    if any(start >= end for start, end in ranges):
        raise _Malformed()
    if len(ranges) == 1:
        return ranges
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _use_range(if_range: str | None, info: BlobInfo) -> bool:
    if if_range is None:
        return True
    return not if_range.startswith("W/") and if_range in (info.etag, info.last_modified)


async def blob_response(
    request: Request,
    storage: Storage,
    key: str,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The blob at ``key`` as the answer to ``request`` (GET or HEAD); :class:`NotFound` when missing."""
    info = await storage.stat(key)
    if info is None:
        raise NotFound()
    base = {
        **(headers or {}),
        "Accept-Ranges": "bytes",
        "ETag": info.etag,
        "Last-Modified": info.last_modified,
    }
    head = request.method == "HEAD"
    header = request.headers.get("range")
    ranges: list[tuple[int, int]] = []
    if header is not None and _use_range(request.headers.get("if-range"), info):
        try:
            ranges = parse_ranges(header, info.size)
        except _Malformed:
            return PlainTextResponse("Malformed range header.", status_code=400)
        except _Unsatisfiable:
            return PlainTextResponse("", status_code=416, headers={"Content-Range": f"bytes */{info.size}"})

    if not ranges:
        body = _nothing() if head else _bytes(storage, key, 0, info.size)
        return _streamed(body, 200, media_type, {**base, "Content-Length": str(info.size)})
    if len(ranges) == 1:
        start, end = ranges[0]
        single = {
            **base,
            "Content-Length": str(end - start),
            "Content-Range": f"bytes {start}-{end - 1}/{info.size}",
        }
        body = _nothing() if head else _bytes(storage, key, start, end)
        return _streamed(body, 206, media_type, single)
    boundary = secrets.token_hex(13)
    parts = [(_part_header(boundary, media_type, start, end, info.size), start, end) for start, end in ranges]
    closing = f"--{boundary}--".encode("latin-1")
    length = sum(len(part) + (end - start) + 2 for part, start, end in parts) + len(closing)
    multi = {**base, "Content-Length": str(length)}
    body = _nothing() if head else _multipart(storage, key, parts, closing)
    return _streamed(body, 206, f"multipart/byteranges; boundary={boundary}", multi)


def _streamed(body: AsyncIterator[bytes], status: int, media_type: str, headers: dict[str, str]) -> Response:
    response = StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)
    return response


def _part_header(boundary: str, media_type: str, start: int, end: int, size: int) -> bytes:
    return (
        f"--{boundary}\r\nContent-Type: {media_type}\r\nContent-Range: bytes {start}-{end - 1}/{size}\r\n\r\n"
    ).encode("latin-1")


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator with no items


async def _bytes(storage: Storage, key: str, start: int, end: int) -> AsyncIterator[bytes]:
    chunks = storage.read(key, start, end)
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()  # a client that went away: release the storage's connection now


async def _multipart(
    storage: Storage, key: str, parts: list[tuple[bytes, int, int]], closing: bytes
) -> AsyncIterator[bytes]:
    for header, start, end in parts:
        yield header
        async for chunk in _bytes(storage, key, start, end):
            yield chunk
        yield b"\r\n"
    yield closing
