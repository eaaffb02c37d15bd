"""Receiving a raw request body as a file (documents, room files, card images): the declared size checked
before a byte is read, then the bytes counted as they arrive."""

from __future__ import annotations

from starlette.requests import Request

from core.errors import N_, InvalidInput, TsunaguError
from core.uploads import Upload


class LengthRequired(InvalidInput):
    code = "length_required"
    status = 411
    message = N_("The upload must state its size (Content-Length).")


class IncompleteUpload(InvalidInput):
    code = "incomplete_upload"
    message = N_("The upload was incomplete. Please try again.")


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


async def receive(request: Request, upload: Upload, declared: int, too_large: TsunaguError) -> None:
    """Stream the body into ``upload``: more bytes than declared are ``too_large``, fewer are incomplete."""
    async for chunk in request.stream():
        if upload.size + len(chunk) > declared:
            raise too_large
        await upload.write(chunk)
    if upload.size != declared:
        raise IncompleteUpload()
