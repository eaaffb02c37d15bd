"""共有メモ templates: each host keeps up to 10 of its own; each org up to 3 shared ones, which admins manage.

In a call the host picks one and the page inserts it into the shared memo (so both sides see it). One shared
template may be the org's default: a new meeting's memo starts with its text, put there by the server when
the room is created (:func:`default_memo_text`), so it is filled exactly once per meeting whoever joins first
and however often they reconnect.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import N_, Conflict, InvalidInput, NotFound
from store.models import MemoTemplate, Role, User
from web.auth import signed_in
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


async def add_template(
    db: AsyncSession, user: User, title: str, body: str, shared: bool, default: bool = False
) -> MemoTemplate:
    """A new template; ``default`` (a shared one only) also makes it the org's default."""
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
    if default and shared:
        await set_default(db, user, template.id, True)
    return template


async def set_default(db: AsyncSession, user: User, template_id: int, default: bool) -> None:
    """An admin makes a shared template the org's default (any other stops being it), or no default at all.
    Anything but an admin and a shared template of its own org is NotFound."""
    template = await db.get(MemoTemplate, template_id)
    if (
        template is None
        or template.org_id != user.org_id
        or template.owner_id is not None
        or user.role != Role.ADMIN
    ):
        raise NotFound()
    # One statement clears the others in the same transaction, so two admins at once still leave one default.
    await db.execute(
        update(MemoTemplate)
        .where(MemoTemplate.org_id == user.org_id, MemoTemplate.id != template.id)
        .values(is_default=False)
    )
    template.is_default = default
    await db.flush()


async def default_memo_text(db: AsyncSession, org_id: int) -> str:
    """The text a new meeting's memo starts with: the org's default template, or nothing."""
    body = await db.scalar(
        select(MemoTemplate.body)
        .where(
            MemoTemplate.org_id == org_id,
            MemoTemplate.owner_id.is_(None),
            MemoTemplate.is_default.is_(True),
        )
        .order_by(MemoTemplate.id)
        .limit(1)
    )
    return body or ""


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
        default = form.get("default") == "1"  # the default is a shared template
        shared = default or form.get("shared") == "1"
        await add_template(request.state.db, user, title, body, shared=shared, default=default)
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
async def default_template_form(request: Request) -> Response:
    """An admin sets (``default=1``) or clears (``default=0``) the org's default template."""
    try:
        template_id = int(request.path_params["template_id"])
    except ValueError as exc:
        raise NotFound() from exc
    form = await request.form()
    await set_default(request.state.db, request.state.user, template_id, form.get("default") == "1")
    return RedirectResponse("/memo-templates?default=1", status_code=303)


@signed_in()
async def templates_api(request: Request) -> Response:
    templates = await templates_for(request.state.db, request.state.user)
    return JSONResponse(
        {
            "templates": [
                {
                    "id": t.id,
                    "title": t.title,
                    "body": t.body,
                    "shared": t.owner_id is None,
                    "default": t.is_default,
                }
                for t in templates
            ]
        }
    )


routes: list[BaseRoute] = [
    Route("/memo-templates", templates_page, methods=["GET"]),
    Route("/memo-templates", add_template_form, methods=["POST"]),
    Route("/memo-templates/{template_id}/delete", delete_template_form, methods=["POST"]),
    Route("/memo-templates/{template_id}/default", default_template_form, methods=["POST"]),
    Route("/api/memo-templates", templates_api, methods=["GET"]),
]
