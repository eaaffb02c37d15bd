"""Receiving a raw request body as a file (documents, room files, card images): the declared size checked
before a byte is read, then the bytes counted and timed as they arrive, one upload slot per sender held.

Slow bodies: after ``UPLOAD_GRACE_SECONDS`` a body must keep arriving at ``UPLOAD_MIN_BYTES_PER_SECOND`` on
average (counted from the start); a client that sends half and stops is cut off at the moment it falls
behind, with :class:`UploadTooSlow` (408), and its part file goes with it (the callers discard it).
Concurrent uploads: each sender (a user, or a guest's browser) holds at most ``UPLOADS_PER_USER`` at once on
this server (:class:`core.uploads.UploadSlots`); more get :class:`core.uploads.TooManyUploads` (429).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request

from core.errors import N_, InvalidInput, TsunaguError
from core.uploads import Upload
from web.services import services


class LengthRequired(InvalidInput):
    code = "length_required"
    status = 411
    message = N_("The upload must state its size (Content-Length).")


class IncompleteUpload(InvalidInput):
    code = "incomplete_upload"
    message = N_("The upload was incomplete. Please try again.")


class UploadTooSlow(InvalidInput):
    code = "upload_too_slow"
    status = 408
    message = N_("The upload was too slow and was stopped. Please try again on a faster connection.")


def declared_size(request: Request, limit: int, too_large: TsunaguError, empty: TsunaguError) -> int:
    """The body's ``Content-Length``; refused before reading when missing, malformed, 0 or over ``limit``."""
    header = request.headers.get("content-length")
    if header is None:
        raise LengthRequired()
    if not header.isdigit():
        raise InvalidInput()
    declared = int(header)
    if declared > limit:
        raise too_large
    if declared == 0:
        raise empty
    return declared


async def chunks(request: Request, declared: int, too_large: TsunaguError) -> AsyncIterator[bytes]:
    """The body's chunks: more bytes than declared are ``too_large``, fewer are incomplete, and a body that
    falls behind the minimum rate after the grace period is :class:`UploadTooSlow`."""
    settings = services(request).settings
    grace, rate = settings.upload_grace_seconds, settings.upload_min_bytes_per_second
    loop = asyncio.get_running_loop()
    started = loop.time()
    received = 0
    stream = request.stream().__aiter__()
    while True:
        # The next bytes must come before the average since the start (less the grace) drops below the rate.
        wait = started + grace + received / rate - loop.time()
        try:
            if wait <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(anext(stream), wait)
        except StopAsyncIteration:
            break
        except TimeoutError as exc:
            raise UploadTooSlow() from exc
        if received + len(chunk) > declared:
            raise too_large
        received += len(chunk)
        yield chunk
    if received != declared:
        raise IncompleteUpload()


async def receive(request: Request, upload: Upload, declared: int, too_large: TsunaguError) -> None:
    """Stream the body into ``upload`` (see :func:`chunks`); on any error the caller discards the upload."""
    async for chunk in chunks(request, declared, too_large):
        await upload.write(chunk)
