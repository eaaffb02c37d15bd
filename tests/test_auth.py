"""Sign-in, sessions, CSRF and the login rate limit, through the real ASGI app."""

from __future__ import annotations

import subprocess
import sys

import httpx
from starlette.applications import Starlette

from core.clock import ManualClock
from store.models import Role
from tests.conftest import make_client
from tests.helpers import PASSWORD, csrf_token, seed_org, sign_in
from web import passwords
from web.services import services


async def test_sign_in_lands_on_the_role_home(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST, "boss@acme.example": Role.MANAGER})
    response = await sign_in(client, "host@acme.example")
    assert response.status_code == 303 and response.headers["location"] == "/host"
    home = await client.get("/host")
    assert home.status_code == 200 and "電話商談(1対1)" in home.text
    async with make_client(app) as other:
        response = await sign_in(other, "BOSS@acme.example")
        assert response.headers["location"] == "/manage"


async def test_wrong_password_says_so_clearly(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    response = await sign_in(client, "host@acme.example", "not-the-password")
    assert response.status_code == 401
    assert "メールアドレスまたはパスワードが正しくありません。" in response.text
    unknown = await sign_in(client, "nobody@acme.example", "whatever-else")
    assert unknown.status_code == 401 and "正しくありません" in unknown.text
    assert (await client.get("/host")).status_code == 303


async def test_eleventh_failure_within_a_minute_is_429(
    app: Starlette, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    for _ in range(10):
        assert (await sign_in(client, "host@acme.example", "wrong-password")).status_code == 401
        clock.advance(5)
    locked = await sign_in(client, "host@acme.example", PASSWORD)
    assert locked.status_code == 429
    assert "ログインの失敗が続いたため" in locked.text
    assert int(locked.headers["retry-after"]) > 0
    # The first failure leaves the window after 60 s; one more attempt is then allowed.
    clock.advance(60 - 5 * 10 + 0.1)
    assert (await sign_in(client, "host@acme.example", PASSWORD)).status_code == 303


async def test_failures_are_also_limited_per_ip(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    for n in range(10):
        assert (await sign_in(client, f"guess{n}@acme.example", "wrong-password")).status_code == 401
    # A different account from the same address is refused too.
    assert (await sign_in(client, "host@acme.example", PASSWORD)).status_code == 429


async def test_post_without_csrf_token_is_403(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    response = await client.post("/login", data={"email": "host@acme.example", "password": PASSWORD})
    assert response.status_code == 403
    assert "フォームの有効期限が切れました" in response.text
    wrong = await client.post(
        "/login", data={"email": "host@acme.example", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert wrong.status_code == 403
    json_refusal = await client.post("/logout", headers={"accept": "application/json"})
    assert json_refusal.status_code == 403 and json_refusal.json()["error"]["code"] == "csrf_failed"


async def test_every_state_changing_route_requires_the_csrf_token(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    seeded = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN, "host@acme.example": Role.HOST})
    assert (await sign_in(client, "admin@acme.example")).status_code == 303
    checked = 0
    for route in app.routes:
        methods = getattr(route, "methods", None) or set()
        for method in methods & {"POST", "PUT", "PATCH", "DELETE"}:
            path = route.path.replace("{user_id:int}", str(seeded.users["host@acme.example"]))  # type: ignore[attr-defined]
            response = await client.request(method, path, data={"x": "1"})
            assert response.status_code == 403, f"{method} {route.path} accepted a request without CSRF"  # type: ignore[attr-defined]
            checked += 1
    assert checked >= 5


async def test_session_cookie_flags(app: Starlette, client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie


async def test_session_cookie_is_secure_behind_https(settings, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from web.app import create_app

    app = create_app(replace(settings, public_url="https://meet.example.jp"), clock=clock)
    async with make_client(app) as c:
        cookie = (await c.get("/login")).headers["set-cookie"].lower()
    await services(app).engine.dispose()
    assert "secure" in cookie and "httponly" in cookie


async def test_password_change_voids_other_sessions(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    await sign_in(client, "host@acme.example")
    async with make_client(app) as laptop:
        await sign_in(laptop, "host@acme.example")
        token = await csrf_token(client, "/account")
        form = {"current_password": PASSWORD, "new_password": "a-new-password-1", "csrf_token": token}
        mismatch = await client.post("/account/password", data={**form, "confirm_password": "different-one"})
        assert mismatch.status_code == 400 and "一致しません" in mismatch.text
        short = {**form, "new_password": "short", "confirm_password": "short"}
        assert "10文字以上" in (await client.post("/account/password", data=short)).text
        changed = await client.post(
            "/account/password", data={**form, "confirm_password": "a-new-password-1"}
        )
        assert changed.status_code == 200 and "パスワードを変更しました" in changed.text
        assert (await client.get("/host")).status_code == 200  # this browser stays signed in
        assert (await laptop.get("/host")).status_code == 303  # the other one is signed out
    async with make_client(app) as fresh:
        assert (await sign_in(fresh, "host@acme.example")).status_code == 401
        assert (await sign_in(fresh, "host@acme.example", "a-new-password-1")).status_code == 303


async def test_sign_out(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    await sign_in(client, "host@acme.example")
    token = await csrf_token(client, "/host")
    assert (await client.post("/logout", data={"csrf_token": token})).status_code == 303
    assert (await client.get("/host")).headers["location"].startswith("/login")


async def test_roles_guard_pages(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    await sign_in(client, "host@acme.example")
    assert (await client.get("/manage")).status_code == 403
    assert (await client.get("/admin/users")).status_code == 403


async def test_next_parameter_only_allows_local_paths(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    token = await csrf_token(client)
    form = {"email": "host@acme.example", "password": PASSWORD, "csrf_token": token}
    response = await client.post("/login", data={**form, "next": "//evil.example/"})
    assert response.headers["location"] == "/host"


def test_passwords_are_argon2id_at_the_production_cost(production_password_cost: None) -> None:
    # The suite hashes at a low cost (tests/conftest.py); what ships is RFC 9106's option: t=3, 64 MiB, p=4.
    hashed = passwords.hash_now("correct horse battery")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), hashed
    assert passwords.verify_now(hashed, "correct horse battery")
    assert not passwords.verify_now(hashed, "correct horse")
    assert passwords.verify_now(passwords.DUMMY_HASH, "x") is False
    assert passwords.DUMMY_HASH.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_fresh_process_hashes_at_the_production_cost() -> None:
    # Nothing but the test suite lowers the cost: the module's own default, as `tsunagu` imports it.
    code = "from web import passwords; print(passwords.hash_now('x')); print(passwords.DUMMY_HASH)"
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert all(line.startswith("$argon2id$v=19$m=65536,t=3,p=4$") for line in printed.stdout.split())
