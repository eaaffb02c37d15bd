"""共有メモ: memo templates and the memo download; the memo's live sync runs on the room channel.

Templates: each host keeps up to 10 of its own; each org up to 3 shared ones, which admins manage. In a
call the host picks one and the page inserts it into the shared memo (so both sides see it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import N_, Conflict, InvalidInput, NotFound
from signaling import rooms
from signaling.after_meeting import check_guest
from signaling.protocol import Role as RoomRole
from store.models import MemoTemplate, Role, User
from web.auth import signed_in
from web.meetings import participant
from web.services import services
from web.templating import render, translator

PERSONAL_LIMIT = 10
SHARED_LIMIT = 3
TITLE_MAX = 100
BODY_MAX = 4000


class TooManyTemplates(Conflict):
    code = "too_many_templates"
    message = N_("You already have {limit} templates. Delete one to add another.")


class TooManySharedTemplates(Conflict):
    code = "too_many_shared_templates"
    message = N_("The organisation already has {limit} shared templates. Delete one to add another.")


class BadTemplate(InvalidInput):
    code = "bad_template"
    message = N_("Enter a title (up to 100 characters) and a text (up to 4000 characters).")


async def templates_for(db: AsyncSession, user: User) -> list[MemoTemplate]:
    """The user's own templates and its org's shared ones (shared first)."""
    result = await db.scalars(
        select(MemoTemplate)
        .where(
            MemoTemplate.org_id == user.org_id,
            or_(MemoTemplate.owner_id.is_(None), MemoTemplate.owner_id == user.id),
        )
        .order_by(MemoTemplate.owner_id.is_not(None), MemoTemplate.id)
    )
    return list(result)


async def add_template(db: AsyncSession, user: User, title: str, body: str, shared: bool) -> MemoTemplate:
    title, body = title.strip(), body.replace("\r\n", "\n").strip()
    if not title or len(title) > TITLE_MAX or not body or len(body) > BODY_MAX:
        raise BadTemplate()
    if shared and user.role != Role.ADMIN:
        raise NotFound()
    owner = None if shared else user.id
    owned = MemoTemplate.owner_id.is_(None) if shared else MemoTemplate.owner_id == user.id
    count = await db.scalar(
        select(func.count()).select_from(MemoTemplate).where(MemoTemplate.org_id == user.org_id, owned)
    )
    if shared and (count or 0) >= SHARED_LIMIT:
        raise TooManySharedTemplates(limit=SHARED_LIMIT)
    if not shared and (count or 0) >= PERSONAL_LIMIT:
        raise TooManyTemplates(limit=PERSONAL_LIMIT)
    template = MemoTemplate(org_id=user.org_id, owner_id=owner, title=title, body=body)
    db.add(template)
    await db.flush()
    return template


async def delete_template(db: AsyncSession, user: User, template_id: int) -> None:
    """Its owner deletes a personal template; an admin a shared one. Anything else is NotFound."""
    template = await db.get(MemoTemplate, template_id)
    if (
        template is None
        or template.org_id != user.org_id
        or (template.owner_id is None and user.role != Role.ADMIN)
        or (template.owner_id is not None and template.owner_id != user.id)
    ):
        raise NotFound()
    await db.delete(template)


async def _page(request: Request, status_code: int = 200, **context: Any) -> Response:
    user: User = request.state.user
    templates = await templates_for(request.state.db, user)
    return render(
        request,
        "memo_templates.html",
        status_code=status_code,
        shared=[t for t in templates if t.owner_id is None],
        personal=[t for t in templates if t.owner_id is not None],
        is_admin=user.role == Role.ADMIN,
        personal_limit=PERSONAL_LIMIT,
        shared_limit=SHARED_LIMIT,
        title_max=TITLE_MAX,
        body_max=BODY_MAX,
        **context,
    )


@signed_in()
async def templates_page(request: Request) -> Response:
    return await _page(request)


@signed_in()
async def add_template_form(request: Request) -> Response:
    form = await request.form()
    user: User = request.state.user
    _ = translator(request)
    title, body = str(form.get("title", "")), str(form.get("body", ""))
    try:
        await add_template(request.state.db, user, title, body, shared=form.get("shared") == "1")
    except (InvalidInput, Conflict) as exc:
        return await _page(
            request,
            status_code=exc.status,
            error=_(exc.message, **exc.params),
            form={"title": title, "body": body},
        )
    return RedirectResponse("/memo-templates?added=1", status_code=303)


@signed_in()
async def delete_template_form(request: Request) -> Response:
    try:
        template_id = int(request.path_params["template_id"])
    except ValueError as exc:
        raise NotFound() from exc
    await delete_template(request.state.db, request.state.user, template_id)
    return RedirectResponse("/memo-templates?deleted=1", status_code=303)


@signed_in()
async def templates_api(request: Request) -> Response:
    templates = await templates_for(request.state.db, request.state.user)
    return JSONResponse(
        {
            "templates": [
                {"id": t.id, "title": t.title, "body": t.body, "shared": t.owner_id is None}
                for t in templates
            ]
        }
    )


def memo_file(text: str) -> bytes:
    """The memo as a text file that opens correctly everywhere.

    UTF-8 with a BOM: Windows Notepad (before Windows 10 1903) and Excel read a BOM-less file as Shift_JIS
    and garble Japanese; the BOM tells them it is UTF-8, and iOS and Android viewers accept it too. CRLF line
    ends: old Notepad shows LF-only text as one long line; iPhone and Android apps read CRLF as well.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\ufeff".encode() + "\r\n".join(lines).encode("utf-8")


async def memo_download(request: Request) -> Response:
    """メモを渡す: the memo as a file, for the room's two participants only (anyone else: 404); for its guest
    until ``GUEST_ACCESS_AFTER_END_HOURS`` after the meeting ended (signaling.after_meeting)."""
    room, role, connect_id = await participant(request)
    if role == RoomRole.GUEST:
        state = services(request)
        check_guest(room, state.clock(), state.settings.guest_access_after_end_hours)
    live = services(request).hub.room(room.id)
    if live is not None:
        text = live.memo.text()
    else:
        async with services(request).sessions() as db:
            text = await rooms.memo_text(db, room.id)
    name = f"メモ_{connect_id or room.created_at.strftime('%Y%m%d')}.txt"
    return Response(
        memo_file(text),
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename=\"memo.txt\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


routes: list[BaseRoute] = [
    Route("/memo-templates", templates_page, methods=["GET"]),
    Route("/memo-templates", add_template_form, methods=["POST"]),
    Route("/memo-templates/{template_id}/delete", delete_template_form, methods=["POST"]),
    Route("/api/memo-templates", templates_api, methods=["GET"]),
    Route("/rooms/{room_id}/memo.txt", memo_download, methods=["GET"]),
]
