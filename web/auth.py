"""Who is asking: session loading, role guards, and the sign-in / sign-out / account pages.

The session cookie is signed (Starlette's ``SessionMiddleware``), HttpOnly, SameSite=Lax, and Secure when
PUBLIC_URL is https. It carries the user id and the user's ``session_version``; a password change or a
deactivation bumps the version and voids every older cookie.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.errors import Forbidden, InvalidInput, NotAuthenticated, RateLimited
from store.models import Role, User
from web import accounts
from web.i18n import LANGUAGES
from web.services import services
from web.templating import SESSION_LANGUAGE, render, translator

Endpoint = Callable[[Request], Awaitable[Response]]

SESSION_USER = "uid"
SESSION_VERSION = "sv"


@dataclass(frozen=True)
class Viewer:
    """What pages show of the signed-in user; plain data, so it outlives a rolled-back transaction."""

    id: int
    email: str
    display_name: str
    role: Role
    org_name: str

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.email, user.display_name, user.role, user.org.name)


def home_for(user: User) -> str:
    return "/host" if user.role == Role.HOST else "/manage"


async def load_user(request: HTTPConnection, db: AsyncSession) -> User | None:
    user_id = request.session.get(SESSION_USER)
    if not isinstance(user_id, int):
        return None
    user = await db.scalar(select(User).options(selectinload(User.org)).where(User.id == user_id))
    if user is None or not user.is_active or user.session_version != request.session.get(SESSION_VERSION):
        request.session.clear()
        return None
    return user


def signed_in(*roles: Role) -> Callable[[Endpoint], Endpoint]:
    """Run the endpoint in one database transaction with ``request.state.user`` set.

    Anonymous visitors are sent to the sign-in page (pages) or get 401 (``/api``); a user without one of
    ``roles`` gets 403. The transaction commits when the endpoint returns and rolls back if it raises.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            async with services(request).sessions.begin() as db:
                request.state.db = db
                user = await load_user(request, db)
                if user is None:
                    if request.url.path.startswith("/api/") or request.method != "GET":
                        raise NotAuthenticated()
                    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
                if roles and user.role not in roles:
                    raise Forbidden()
                request.state.user = user
                request.state.viewer = Viewer.of(user)
                return await endpoint(request)

        return guarded

    return decorate


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(value: object) -> str | None:
    # Only local paths: an open redirect after sign-in is a phishing aid.
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


async def login_page(request: Request) -> Response:
    return render(request, "login.html", next=_safe_next(request.query_params.get("next")) or "")


async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", "")).strip().lower()
    password = str(form.get("password", ""))
    next_path = _safe_next(form.get("next"))
    limiter = services(request).login_limiter
    keys = (f"account:{email}", f"ip:{_client_ip(request)}")
    wait = max([await limiter.retry_after(key) for key in keys])
    _ = translator(request)
    if wait > 0:
        error = RateLimited(wait, "Too many failed sign-ins. Please wait {seconds} seconds and try again.")
        return render(
            request,
            "login.html",
            status_code=429,
            error=_(error.message, **error.params),
            email=email,
            next=next_path or "",
            headers={"Retry-After": str(error.retry_after)},
        )
    async with services(request).sessions.begin() as db:
        user = await accounts.authenticate(db, email, password)
        if user is None:
            for key in keys:
                await limiter.add(key)
            return render(
                request,
                "login.html",
                status_code=401,
                error=_("The email or password is not correct."),
                email=email,
                next=next_path or "",
            )
        await limiter.reset(keys[0])
        request.session.clear()
        request.session.update({SESSION_USER: user.id, SESSION_VERSION: user.session_version})
        if user.locale in LANGUAGES:
            request.session[SESSION_LANGUAGE] = user.locale
        return RedirectResponse(next_path or home_for(user), status_code=303)


async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@signed_in()
async def account_page(request: Request) -> Response:
    return render(request, "account.html")


@signed_in()
async def change_password(request: Request) -> Response:
    form = await request.form()
    user: User = request.state.user
    _ = translator(request)
    new = str(form.get("new_password", ""))
    if new != str(form.get("confirm_password", "")):
        return render(request, "account.html", status_code=400, error=_("The new passwords do not match."))
    try:
        await accounts.change_password(request.state.db, user, str(form.get("current_password", "")), new)
    except InvalidInput as exc:
        return render(request, "account.html", status_code=400, error=_(exc.message, **exc.params))
    request.session[SESSION_VERSION] = user.session_version
    return render(request, "account.html", notice=_("Your password has been changed."))


async def choose_language(request: Request) -> Response:
    """Anyone may switch language; a signed-in user's choice is also saved on the account."""
    form = await request.form()
    chosen = str(form.get("lang", ""))
    if chosen not in LANGUAGES:
        raise InvalidInput()
    request.session[SESSION_LANGUAGE] = chosen
    async with services(request).sessions.begin() as db:
        user = await load_user(request, db)
        if user is not None:
            user.locale = chosen
    return RedirectResponse(_safe_next(form.get("next")) or "/", status_code=303)


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", change_password, methods=["POST"]),
    Route("/language", choose_language, methods=["POST"]),
]
