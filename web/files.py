"""ファイル送信: files sent in a call, both ways, streamed to room storage.

``POST /api/rooms/{room_id}/files?name=…`` takes the raw file as the body (not multipart), like document
uploads: the size is checked from ``Content-Length`` before a byte is read and again while reading, the body
is streamed to storage as it arrives (hashed on the way) with no database transaction open, and kept
under its key only when complete and its row written. Then the room announces it (``file.shared``) to both
sides. Only the room's host and guest may send, list or download (with Range requests); everyone else gets
404.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import structlog
from sqlalchemy import select
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from recordings.files import (
    RoomFileStorage,
    add_room_file,
    clean_content_type,
    file_json,
    room_file,
    room_files,
    sanitise_file_name,
)
from recordings.quotas import Reservation
from signaling.after_meeting import check_guest
from signaling.models import RoomRow, RoomState
from signaling.protocol import FileInfo, Role
from store.models import Org
from web.blobs import blob_response
from web.meetings import participant
from web.services import services
from web.uploads import declared_size, receive

log = structlog.get_logger("tsunagu.files")
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}


class FileTooLarge(InvalidInput):
    code = "file_too_large"
    status = 413
    message = N_("The file is too large. Up to {max_mb} MB can be sent at a time.")


class EmptyFile(InvalidInput):
    code = "empty_file"
    message = N_("The file is empty.")


class HostSendOff(Forbidden):
    code = "host_file_send_off"
    message = N_(
        "Your organisation does not allow hosts to send files. Files from the customer still arrive."
    )


class RoomEnded(Conflict):
    code = "room_ended"
    message = N_("This meeting has ended.")


def megabytes(size: int) -> str:
    """50 MiB -> "50": the limit as people read it (MB meaning MiB, as usual)."""
    return f"{size / (1024 * 1024):.4g}"


def _storage(request: Request) -> RoomFileStorage:
    return RoomFileStorage(services(request).storage)


async def _may_send(request: Request, room: RoomRow, role: Role) -> bool:
    if role == Role.GUEST:
        return True
    async with services(request).sessions() as db:
        allowed = await db.scalar(select(Org.host_file_send).where(Org.id == room.org_id))
    return bool(allowed)


async def send_file(request: Request) -> Response:
    """``POST /api/rooms/{room_id}/files?name=…`` with the file as the body; 201 and the file.

    No transaction is held while the body streams in (a 50 MB send over a phone line takes minutes).
    """
    state = services(request)
    room, role, _connect_id = await participant(request)  # NotFound for anyone else
    if room.state == RoomState.ENDED:
        raise RoomEnded()
    if not await _may_send(request, room, role):
        raise HostSendOff()
    limit = state.settings.room_file_max_bytes
    too_large = FileTooLarge(max_mb=megabytes(limit))
    declared = declared_size(request, limit, too_large, EmptyFile())
    # The host is a user; the guest is known by its room. Either holds a few upload slots at once, and the
    # send holds its size of the room's and the org's file quotas until it is stored or refused.
    sender = f"user:{room.host_id}" if role == Role.HOST else f"guest:{room.id}"
    with state.uploads.hold(sender):
        async with state.file_quotas.reserve(room.id, room.org_id, declared) as reservation:
            body = await _receive_file(request, room, role, declared, too_large, reservation)
            if body is None:
                return Response(status_code=400)  # the sender went away: nobody is listening any more
    log.info("file sent", room=room.id, sender=role.value, file=body["id"], size=body["size"])
    await state.hub.announce_file(
        room.id, FileInfo(id=body["id"], name=body["name"], size=body["size"], sender=role)
    )
    return JSONResponse(body, status_code=201)


async def _receive_file(
    request: Request,
    room: RoomRow,
    role: Role,
    declared: int,
    too_large: FileTooLarge,
    reservation: Reservation,
) -> dict[str, Any] | None:
    """Stream the body to a part file and keep it with its row; None when the sender disconnected. Whatever
    goes wrong (too large, too slow, ended meanwhile), the part file and any half-kept file are removed."""
    state = services(request)
    name = sanitise_file_name(request.query_params.get("name", ""))
    content_type = clean_content_type(request.headers.get("content-type"))
    storage = _storage(request)
    upload = storage.new_upload()
    file_id: int | None = None

    async def keep() -> dict[str, Any]:
        nonlocal file_id
        async with state.sessions.begin() as db:
            current = await db.scalar(select(RoomRow.state).where(RoomRow.id == room.id))
            if current == RoomState.ENDED:  # ended while the file was on its way
                raise RoomEnded()
            row = await add_room_file(
                db,
                room_id=room.id,
                org_id=room.org_id,
                sender=role.value,
                name=name,
                size=upload.size,
                sha256=upload.sha256,
                content_type=content_type,
            )
            file_id = row.id
            await upload.keep(storage.key(room.org_id, room.id, file_id))
            return file_json(row)

    try:
        await receive(request, upload, declared, too_large)
        return await reservation.store(keep)
    except ClientDisconnect:
        await upload.discard()
        log.info("file send interrupted", room=room.id, sender=role.value)
        return None
    except BaseException:
        await asyncio.shield(upload.discard())  # also when cancelled: the multipart upload must go
        if file_id is not None:  # the row was not committed: its file must not stay either
            await asyncio.shield(storage.remove(room.org_id, room.id, file_id))
        raise


def _guest_still_may(request: Request, room: RoomRow, role: Role) -> None:
    if role == Role.GUEST:
        state = services(request)
        check_guest(room, state.clock(), state.settings.guest_access_after_end_hours)


async def list_files(request: Request) -> Response:
    """``GET /api/rooms/{room_id}/files``: the room's files, and whether this participant may send."""
    room, role, _connect_id = await participant(request)
    _guest_still_may(request, room, role)
    async with services(request).sessions() as db:
        rows = await room_files(db, room.id)
    settings = services(request).settings
    body: dict[str, Any] = {
        "files": [file_json(row) for row in rows if row.org_id == room.org_id],
        "role": role.value,
        "can_send": room.state != RoomState.ENDED and await _may_send(request, room, role),
        "max_bytes": settings.room_file_max_bytes,
        "max_mb": megabytes(settings.room_file_max_bytes),
    }
    return JSONResponse(body)


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback for old clients, and the real name as ``filename*`` in UTF-8."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in name)
    fallback = fallback.strip() or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def download_file(request: Request) -> Response:
    """``GET /rooms/{room_id}/files/{file_id}``: the file, as an attachment, to the room's participants
    (to its guest until ``GUEST_ACCESS_AFTER_END_HOURS`` after the meeting ended; signaling.after_meeting)."""
    room, role, _connect_id = await participant(request)
    _guest_still_may(request, room, role)
    async with services(request).sessions() as db:
        row = await room_file(db, room.id, room.org_id, int(request.path_params["file_id"]))
    if row is None:
        raise NotFound()
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(row.name)}
    key = _storage(request).key(room.org_id, room.id, row.id)
    return await blob_response(request, services(request).storage, key, row.content_type, headers)


routes: list[BaseRoute] = [
    Route("/api/rooms/{room_id}/files", send_file, methods=["POST"]),
    Route("/api/rooms/{room_id}/files", list_files, methods=["GET"]),
    Route("/rooms/{room_id}/files/{file_id:int}", download_file, methods=["GET"]),
]
