"""The admin pages: the org's users (add, deactivate, reactivate), its SMS送信履歴 (SMS history) and its
settings (組織の設定: name, the texts guests accept, the pre-connect defaults).

Admins see and touch only their org."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.clock import in_jst
from core.errors import N_, Conflict, InvalidInput
from signaling import sms
from signaling.models import SmsStatus
from store.models import Org, Role, User
from web import accounts
from web.auth import signed_in
from web.guests import DEFAULT_PERSONAL_DATA, DEFAULT_PRIVACY, DEFAULT_TERMS
from web.templating import render, translator


async def _users_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    admin: User = request.state.user
    users = await accounts.org_users(request.state.db, admin.org_id)
    return render(
        request, "admin_users.html", status_code=status_code, users=users, roles=list(Role), **context
    )


@signed_in(Role.ADMIN)
async def users_page(request: Request) -> Response:
    return await _users_page(request)


@signed_in(Role.ADMIN)
async def add_user(request: Request) -> Response:
    form = await request.form()
    admin: User = request.state.user
    _ = translator(request)
    fields = {name: str(form.get(name, "")) for name in ("email", "display_name", "role", "password")}
    try:
        await accounts.add_user(
            request.state.db,
            admin.org,
            fields["email"],
            fields["display_name"],
            fields["role"],
            fields["password"],
        )
    except (InvalidInput, Conflict) as exc:
        return await _users_page(
            request, status_code=exc.status, error=_(exc.message, **exc.params), form=fields
        )
    return RedirectResponse("/admin/users?added=1", status_code=303)


SMS_PAGE_LIMIT = 200
SMS_STATUS_LABELS = {
    SmsStatus.STORED: N_("Kept in the outbox (not sent)"),
    SmsStatus.SENT: N_("Sent"),
    SmsStatus.FAILED: N_("Sending failed"),
}


@signed_in(Role.ADMIN)
async def sms_page(request: Request) -> Response:
    admin: User = request.state.user
    messages = await sms.org_messages(request.state.db, admin.org_id, limit=SMS_PAGE_LIMIT)
    return render(
        request,
        "admin_sms.html",
        messages=[(message, in_jst(message.created_at)) for message in messages],
        status_labels=SMS_STATUS_LABELS,
        limit=SMS_PAGE_LIMIT,
    )


def _set_active(active: bool):  # type: ignore[no-untyped-def]
    @signed_in(Role.ADMIN)
    async def endpoint(request: Request) -> Response:
        admin: User = request.state.user
        try:
            await accounts.set_active(
                request.state.db, admin.org_id, int(request.path_params["user_id"]), active, admin
            )
        except InvalidInput as exc:
            _ = translator(request)
            return await _users_page(request, status_code=400, error=_(exc.message, **exc.params))
        return RedirectResponse("/admin/users", status_code=303)

    return endpoint


ORG_NAME_MAX = 200  # Org.name is String(200)
GUEST_TEXT_MAX = 10_000
# Org column -> (label msgid, built-in text msgid shown to guests while the column is empty).
GUEST_TEXTS = {
    "terms_of_use": (N_("Terms of use"), DEFAULT_TERMS),
    "personal_data_policy": (N_("Handling of personal data"), DEFAULT_PERSONAL_DATA),
    "privacy_policy": (N_("Privacy policy"), DEFAULT_PRIVACY),
}
DEFAULT_FLAGS = ("default_camera", "default_recording", "host_file_send", "show_sit_in")


def _settings_form(org: Org) -> dict[str, Any]:
    return {
        "name": org.name,
        **{field: getattr(org, field) for field in GUEST_TEXTS},
        **{flag: getattr(org, flag) for flag in DEFAULT_FLAGS},
    }


def _settings_page(
    request: Request, form: dict[str, Any], status_code: int = 200, **context: Any
) -> Response:
    admin: User = request.state.user
    return render(
        request,
        "admin_settings.html",
        status_code=status_code,
        form=form,
        texts=GUEST_TEXTS,
        slug=admin.org.slug,
        name_max=ORG_NAME_MAX,
        text_max=GUEST_TEXT_MAX,
        **context,
    )


@signed_in(Role.ADMIN)
async def settings_page(request: Request) -> Response:
    admin: User = request.state.user
    return _settings_page(request, _settings_form(admin.org))


def _clean_text(value: object) -> str:
    # Browsers send textarea line breaks as CRLF; keep them as plain LF (the guest dialog uses pre-wrap).
    return str(value or "").replace("\r\n", "\n").replace("\r", "\n").strip()


@signed_in(Role.ADMIN)
async def save_settings(request: Request) -> Response:
    """Always the caller's own org: there is no org id to tamper with."""
    raw = await request.form()
    admin: User = request.state.user
    _ = translator(request)
    form: dict[str, Any] = {
        "name": _clean_text(raw.get("name")),
        **{field: _clean_text(raw.get(field)) for field in GUEST_TEXTS},
        **{flag: raw.get(flag) is not None for flag in DEFAULT_FLAGS},
    }
    errors = []
    if not form["name"]:
        errors.append(_("Please enter the organisation name."))
    elif len(form["name"]) > ORG_NAME_MAX:
        errors.append(_("The organisation name must be at most {max} characters.", max=f"{ORG_NAME_MAX:,}"))
    for field, (label, _default) in GUEST_TEXTS.items():
        if len(form[field]) > GUEST_TEXT_MAX:
            errors.append(
                _("{field} must be at most {max} characters.", field=_(label), max=f"{GUEST_TEXT_MAX:,}")
            )
    if errors:
        return _settings_page(request, form, status_code=400, errors=errors)
    org = admin.org
    for key, value in form.items():
        setattr(org, key, value)
    return RedirectResponse("/admin/settings?saved=1", status_code=303)


routes = [
    Route("/admin/users", users_page, methods=["GET"]),
    Route("/admin/users", add_user, methods=["POST"]),
    Route("/admin/users/{user_id:int}/deactivate", _set_active(False), methods=["POST"]),
    Route("/admin/users/{user_id:int}/activate", _set_active(True), methods=["POST"]),
    Route("/admin/sms", sms_page, methods=["GET"]),
    Route("/admin/settings", settings_page, methods=["GET"]),
    Route("/admin/settings", save_settings, methods=["POST"]),
]
