"""Finding 7: sign-out left the session alive (a copied cookie still worked). Sessions are server-side now:
sign-out, a password change and a deactivation end them wherever their cookie went. And every response
refuses to be framed and carries the Content-Security-Policy (the browser test checks the pages pass it)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from store.models import Role
from tests.conftest import make_client
from tests.helpers import PASSWORD, csrf_token, seed_org, sign_in


def copy_of(app: Starlette, browser: httpx.AsyncClient) -> httpx.AsyncClient:
    """Another client holding a copy of ``browser``'s cookies (a stolen or copied cookie)."""
    thief = make_client(app)
    thief.cookies = httpx.Cookies(browser.cookies)
    return thief


async def signed_in(app: Starlette, email: str, password: str = PASSWORD) -> httpx.AsyncClient:
    browser = make_client(app)
    assert (await sign_in(browser, email, password)).status_code == 303
    return browser


async def test_sign_out_ends_the_session_for_every_copy_of_its_cookie(app: Starlette) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    browser = await signed_in(app, "host@acme.example")
    thief = copy_of(app, browser)
    try:
        assert (await thief.get("/host")).status_code == 200  # a copy works while the session lives
        token = await csrf_token(browser, "/host")
        assert (await browser.post("/logout", data={"csrf_token": token})).status_code == 303
        assert (await thief.get("/host")).status_code == 303  # to the sign-in page
        assert (await thief.get("/api/memo-templates")).status_code == 401
    finally:
        await browser.aclose()
        await thief.aclose()


async def test_a_password_change_ends_every_other_session(app: Starlette) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    laptop, phone = await signed_in(app, "host@acme.example"), await signed_in(app, "host@acme.example")
    thief = copy_of(app, laptop)
    try:
        token = await csrf_token(laptop, "/account")
        form = {"current_password": PASSWORD, "new_password": "another-password-2", "csrf_token": token}
        changed = await laptop.post(
            "/account/password", data={**form, "confirm_password": form["new_password"]}
        )
        assert changed.status_code == 200
        assert (await laptop.get("/host")).status_code == 200  # the browser that changed it stays in
        assert (await phone.get("/host")).status_code == 303
        assert (await thief.get("/host")).status_code == 303  # the copy carried the laptop's old session
    finally:
        for client in (laptop, phone, thief):
            await client.aclose()


async def test_deactivation_ends_every_session_for_good(app: Starlette) -> None:
    seeded = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN, "host@acme.example": Role.HOST})
    admin, host = await signed_in(app, "admin@acme.example"), await signed_in(app, "host@acme.example")
    thief = copy_of(app, host)
    try:
        token = await csrf_token(admin, "/admin/users")
        user = seeded.users["host@acme.example"]
        assert (
            await admin.post(f"/admin/users/{user}/deactivate", data={"csrf_token": token})
        ).status_code == 303
        assert (
            await admin.post(f"/admin/users/{user}/activate", data={"csrf_token": token})
        ).status_code == 303
        assert (await host.get("/host")).status_code == 303  # active again, but its sessions stay ended
        assert (await thief.get("/host")).status_code == 303
    finally:
        for client in (admin, host, thief):
            await client.aclose()


@pytest.mark.parametrize(
    "path", ["/", "/login", "/host", "/no-such-page", "/static/app.css", "/api/rooms/x/files"]
)
async def test_every_response_refuses_framing_and_carries_the_policy(app: Starlette, path: str) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    browser = await signed_in(app, "host@acme.example")
    try:
        response = await browser.get(path)
    finally:
        await browser.aclose()
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "'unsafe-inline'" not in policy and "style-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
