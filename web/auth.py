"""Who is asking: session loading, role guards, and the sign-in / sign-out / account pages.

The session cookie is signed (Starlette's ``SessionMiddleware``), HttpOnly, SameSite=Lax, and Secure when
PUBLIC_URL is https. For a signed-in user it carries only the token of a server-side session
(``web.login_sessions``): signing out, changing the password or being deactivated deletes the session rows,
and a copied cookie is worth nothing from then on.

Sign-in counts every attempt against the limits before the password is checked, in one atomic step, and
takes the count back when the password was right: a burst of simultaneous guesses cannot all slip under the
limit. The password is verified off the event loop (``web.passwords``).
"""

from __future__ import annotations

import contextlib
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

from core.errors import Forbidden, InvalidInput, NotAuthenticated, RateLimited, Unavailable
from store.models import Role, User
from web import accounts, login_sessions, passwords
from web.i18n import LANGUAGES
from web.services import services
from web.templating import SESSION_LANGUAGE, render, translator

Endpoint = Callable[[Request], Awaitable[Response]]

SESSION_TOKEN = "sid"


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
    """The signed-in user of this request (org loaded), or None; a dead session is dropped from the cookie."""
    token = request.session.get(SESSION_TOKEN)
    if not isinstance(token, str):
        return None
    user = await login_sessions.user_of(db, token, services(request).clock())
    if user is None:
        request.session.pop(SESSION_TOKEN, None)
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
    state = services(request)
    limiter = state.login_limiter
    keys = (f"account:{email}", f"ip:{_client_ip(request)}")
    _ = translator(request)

    def page(status_code: int, error: str, headers: dict[str, str] | None = None) -> Response:
        return render(
            request,
            "login.html",
            status_code=status_code,
            error=error,
            email=email,
            next=next_path or "",
            headers=headers,
        )

    try:
        attempt = await limiter.hit(*keys)
    except Unavailable as down:  # the shared store (Redis) holding the counts does not answer
        return page(down.status, _(down.message, **down.params))
    if not attempt.counted:
        error = RateLimited(
            attempt.retry_after, "Too many failed sign-ins. Please wait {seconds} seconds and try again."
        )
        return page(429, _(error.message, **error.params), {"Retry-After": str(error.retry_after)})
    # The hash is read in a short session and verified with no database connection held.
    async with state.sessions() as db:
        found = await db.scalar(select(User).where(User.email == email))
        user_id, stored = (found.id, found.password_hash) if found and found.is_active else (None, None)
    if not await accounts.password_matches(stored, password) or user_id is None:
        return page(401, _("The email or password is not correct."))
    async with state.sessions.begin() as db:
        user = await db.scalar(select(User).options(selectinload(User.org)).where(User.id == user_id))
        if user is None or not user.is_active:
            return page(401, _("The email or password is not correct."))
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await passwords.hash_password(password)
        token = await login_sessions.start(db, user.id, state.clock())
        request.session.clear()
        request.session[SESSION_TOKEN] = token
        if user.locale in LANGUAGES:
            request.session[SESSION_LANGUAGE] = user.locale
        home = home_for(user)
    with contextlib.suppress(Unavailable):  # signed in all the same; the count just stays
        await limiter.undo(attempt)
        await limiter.reset(keys[0])
    return RedirectResponse(next_path or home, status_code=303)


async def logout(request: Request) -> Response:
    """Ends this browser's session on the server, so a copy of its cookie signs nobody in."""
    token = request.session.get(SESSION_TOKEN)
    if isinstance(token, str):
        async with services(request).sessions.begin() as db:
            await login_sessions.end(db, token)
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
    # Every session of the user ended with the old password; this browser gets a fresh one.
    request.session[SESSION_TOKEN] = await login_sessions.start(
        request.state.db, user.id, services(request).clock()
    )
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
