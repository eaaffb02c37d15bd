"""The document library (資料): the library page, its JSON API, uploads, and the page images.

Uploads are the raw file as the request body (not multipart), streamed to storage in chunks; the size is
checked from ``Content-Length`` before a byte is read and again while reading. Page images are served to
signed-in users of the document's org who may see it, and to the guest of a live meeting in which the
document was shown (a ``PageView`` row); everyone else gets 404.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from documents.library import (
    DocumentJobs,
    DocumentTooLarge,
    NotAPdf,
    OfficeUnavailable,
    create_document,
    delete_document,
    document_for_org,
    is_office,
    sanitise_name,
    set_kind,
    visible_documents,
)
from documents.models import Document, DocumentStatus
from recordings.models import PageView
from signaling.after_meeting import ended_after
from signaling.models import RoomRow, RoomState
from signaling.rooms import token_hash
from store.models import Role, User
from web.auth import load_user, signed_in
from web.blobs import blob_response
from web.guests import guest_token
from web.services import services
from web.templating import render, translator
from web.uploads import declared_size, receive

LIBRARY_ROLES = (Role.HOST, Role.ADMIN)
IMAGE_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}


class KindChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str


def megabytes(size: int) -> str:
    """50 MiB -> "50", 64 KiB -> "0.0625": the limit as people read it (MB meaning MiB, as usual)."""
    return f"{size / (1024 * 1024):.4g}"


def _jobs(request: Request) -> DocumentJobs:
    jobs: DocumentJobs = services(request).documents
    return jobs


def _privileged(user: User) -> bool:
    """Admins and managers see every document of their org (managers review meetings)."""
    return user.role in (Role.ADMIN, Role.MANAGER)


def may_see(document: Document, user: User) -> bool:
    return document.org_id == user.org_id and (
        document.owner_id == user.id or document.org_wide or _privileged(user)
    )


def may_change(document: Document, user: User) -> bool:
    return document.org_id == user.org_id and (document.owner_id == user.id or user.role == Role.ADMIN)


async def _visible(request: Request) -> Document:
    user: User = request.state.user
    document = await document_for_org(request.state.db, user.org_id, int(request.path_params["document_id"]))
    if not may_see(document, user):
        raise NotFound()  # another host's own document: as if it did not exist
    return document


def _error_text(request: Request, document: Document) -> str:
    if not document.error:
        return ""
    settings = services(request).settings
    params = {"limit": settings.document_max_pages, "max_mb": megabytes(settings.document_max_bytes)}
    return translator(request)(document.error, **params)


def document_json(request: Request, document: Document, user: User) -> dict[str, Any]:
    ready = document.status == DocumentStatus.READY
    return {
        "id": document.id,
        "name": document.name,
        "kind": document.kind.value,
        "status": document.status.value,
        "pages": document.pages,
        "rendered": document.rendered,
        "size": document.size,
        "org_wide": document.org_wide,
        "error": _error_text(request, document),
        "thumb": f"/documents/{document.id}/thumbs/1.jpg" if ready else None,
        "can_change": may_change(document, user),
        "created_at": document.created_at.isoformat(),
    }


async def _list_json(request: Request) -> list[dict[str, Any]]:
    user: User = request.state.user
    documents = await visible_documents(request.state.db, user.id, user.org_id)
    return [document_json(request, document, user) for document in documents]


@signed_in(*LIBRARY_ROLES)
async def library_page(request: Request) -> Response:
    user: User = request.state.user
    settings = services(request).settings
    listing = json.dumps(await _list_json(request), ensure_ascii=False).replace("<", "\\u003c")
    return render(
        request,
        "documents.html",
        documents_json=Markup(listing),  # "<" escaped: the JSON cannot end its <script> element
        max_bytes=settings.document_max_bytes,
        max_mb=megabytes(settings.document_max_bytes),
        office=_jobs(request).office is not None,
        is_admin=user.role == Role.ADMIN,
    )


@signed_in(*LIBRARY_ROLES)
async def list_documents(request: Request) -> Response:
    return JSONResponse({"documents": await _list_json(request)})


@signed_in(*LIBRARY_ROLES)
async def get_document(request: Request) -> Response:
    return JSONResponse(document_json(request, await _visible(request), request.state.user))


async def upload_document(request: Request) -> Response:
    """``POST /api/documents?name=…&org_wide=0|1`` with the file as the body; 202 and the document.

    Not wrapped in ``signed_in``: that holds a database transaction for the whole request, and a 50 MB
    upload over a phone line takes minutes. The user is checked in a short session, the body streamed with
    no transaction open, and the row written in a second short one.
    """
    state = services(request)
    settings = state.settings
    async with state.sessions() as db:
        user = await load_user(request, db)
        if user is None:
            raise NotAuthenticated()
        if user.role not in LIBRARY_ROLES:
            raise Forbidden()
        user_id, org_id, is_admin = user.id, user.org_id, user.role == Role.ADMIN
    name = sanitise_name(request.query_params.get("name", ""))
    org_wide = request.query_params.get("org_wide", "0")
    if org_wide not in ("0", "1"):
        raise InvalidInput()
    if org_wide == "1" and not is_admin:
        raise Forbidden()
    limit = settings.document_max_bytes
    too_large = DocumentTooLarge(max_mb=megabytes(limit))
    declared = declared_size(request, limit, too_large, NotAPdf())
    jobs = _jobs(request)
    if is_office(name) and jobs.office is None:
        raise OfficeUnavailable()

    with state.uploads.hold(f"user:{user_id}"):
        body, doc_id = await _receive_document(request, user_id, org_id, name, org_wide == "1", declared)
    if doc_id is None:
        return Response(status_code=400)  # the uploader went away: nobody is listening any more
    jobs.start(doc_id)
    return JSONResponse(body, status_code=202)


async def _receive_document(
    request: Request, user_id: int, org_id: int, name: str, org_wide: bool, declared: int
) -> tuple[dict[str, Any], int | None]:
    """Stream the body to a part file and keep it as a new document; no id when the uploader went away.
    Whatever goes wrong (too large, too slow), the part file and the half-made document are removed."""
    state = services(request)
    storage = _jobs(request).storage
    too_large = DocumentTooLarge(max_mb=megabytes(state.settings.document_max_bytes))
    upload = storage.new_upload()
    doc_id: int | None = None
    try:
        await receive(request, upload, declared, too_large)
        async with state.sessions.begin() as db:
            document = await create_document(
                db, org_id=org_id, owner_id=user_id, name=name, org_wide=org_wide, size=upload.size
            )
            doc_id = document.id
            suffix = name[name.rfind(".") :].lower() if is_office(name) else ""
            await upload.keep(
                storage.source(org_id, doc_id, suffix) if suffix else storage.original(org_id, doc_id)
            )
            user = await db.get(User, user_id)
            assert user is not None
            return document_json(request, document, user), doc_id
    except ClientDisconnect:
        await upload.discard()
        return {}, None
    except BaseException:
        await asyncio.shield(upload.discard())  # also when cancelled: the multipart upload must go
        if doc_id is not None:  # the row was not committed: its files must not stay either
            await asyncio.shield(storage.remove(org_id, doc_id))
        raise


@signed_in(*LIBRARY_ROLES)
async def change_kind(request: Request) -> Response:
    document = await _visible(request)
    if not may_change(document, request.state.user):
        raise Forbidden()
    try:
        body = KindChange.model_validate_json(await request.body())
    except ValidationError as exc:
        raise InvalidInput() from exc
    await set_kind(request.state.db, document, body.kind)
    return JSONResponse(document_json(request, document, request.state.user))


@signed_in(*LIBRARY_ROLES)
async def delete(request: Request) -> Response:
    document = await _visible(request)
    if not may_change(document, request.state.user):
        raise Forbidden()
    await _jobs(request).cancel(document.id)
    await delete_document(request.state.db, _jobs(request).storage, document)
    return JSONResponse({"deleted": document.id})


# --- page images ------------------------------------------------------------------------------------------


async def _guest_saw_it(db: AsyncSession, request: Request, document: Document) -> bool:
    """This browser is the guest of a meeting of the document's org in which it was shown, and that meeting
    is live or ended less than ``GUEST_ACCESS_AFTER_END_HOURS`` ago (signaling.after_meeting)."""
    token = guest_token(request)
    if not token:
        return False
    state = services(request)
    open_since = ended_after(state.clock(), state.settings.guest_access_after_end_hours)
    shown = await db.scalar(
        select(PageView.id)
        .join(RoomRow, RoomRow.id == PageView.room_id)
        .where(
            PageView.document_id == document.id,
            RoomRow.guest_token_hash == token_hash(token),
            or_(RoomRow.state != RoomState.ENDED, RoomRow.ended_at > open_since),
            RoomRow.org_id == document.org_id,
        )
        .limit(1)
    )
    return shown is not None


def _image(thumb: bool) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        doc_id, n = int(request.path_params["document_id"]), int(request.path_params["n"])
        async with services(request).sessions() as db:
            document = await db.get(Document, doc_id)
            if document is None or document.status != DocumentStatus.READY or not 1 <= n <= document.pages:
                raise NotFound()
            user = await load_user(request, db)
            allowed = user is not None and may_see(document, user)
            if not allowed:
                allowed = await _guest_saw_it(db, request, document)
            org_id = document.org_id
        if not allowed:
            raise NotFound()
        storage = _jobs(request).storage
        key = storage.thumb(org_id, doc_id, n) if thumb else storage.page(org_id, doc_id, n)
        return await blob_response(request, storage.storage, key, "image/jpeg", IMAGE_HEADERS)

    return endpoint


routes = [
    Route("/documents", library_page, methods=["GET"]),
    Route("/api/documents", list_documents, methods=["GET"]),
    Route("/api/documents", upload_document, methods=["POST"]),
    Route("/api/documents/{document_id:int}", get_document, methods=["GET"]),
    Route("/api/documents/{document_id:int}/kind", change_kind, methods=["POST"]),
    Route("/api/documents/{document_id:int}/delete", delete, methods=["POST"]),
    Route("/documents/{document_id:int}/pages/{n:int}.jpg", _image(thumb=False), methods=["GET"]),
    Route("/documents/{document_id:int}/thumbs/{n:int}.jpg", _image(thumb=True), methods=["GET"]),
]
