"""The admin's user pages. (Who may use which route, across orgs too, is tests/test_authorisation.py.)"""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette

from store.models import Role
from tests.conftest import make_client
from tests.helpers import csrf_token, seed_org, sign_in


async def test_admin_adds_and_deactivates_a_user(app: Starlette, client: httpx.AsyncClient) -> None:
    seeded = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await sign_in(client, "admin@acme.example")
    token = await csrf_token(client, "/admin/users")
    form = {
        "display_name": "新人 太郎",
        "email": "new@acme.example",
        "role": "host",
        "password": "welcome-2026!",
    }
    added = await client.post("/admin/users", data={**form, "csrf_token": token})
    assert added.status_code == 303
    listing = (await client.get(added.headers["location"])).text
    assert "新人 太郎" in listing and "ユーザーを追加しました" in listing
    duplicate = await client.post("/admin/users", data={**form, "csrf_token": token})
    assert duplicate.status_code == 409 and "すでに登録されています" in duplicate.text
    bad_role = await client.post(
        "/admin/users", data={**form, "email": "x@acme.example", "role": "root", "csrf_token": token}
    )
    assert bad_role.status_code == 400

    async with make_client(app) as newcomer:
        assert (await sign_in(newcomer, "new@acme.example", "welcome-2026!")).status_code == 303
        new_id = int(re.search(r"/admin/users/(\d+)/deactivate", listing).group(1))  # type: ignore[union-attr]
        assert new_id != seeded.users["admin@acme.example"]
        assert (
            await client.post(f"/admin/users/{new_id}/deactivate", data={"csrf_token": token})
        ).status_code == 303
        assert (await newcomer.get("/host")).status_code == 303  # signed out at once
    async with make_client(app) as again:
        assert (await sign_in(again, "new@acme.example", "welcome-2026!")).status_code == 401
        assert (
            await client.post(f"/admin/users/{new_id}/activate", data={"csrf_token": token})
        ).status_code == 303
        assert (await sign_in(again, "new@acme.example", "welcome-2026!")).status_code == 303


async def test_admin_cannot_deactivate_itself(app: Starlette, client: httpx.AsyncClient) -> None:
    seeded = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await sign_in(client, "admin@acme.example")
    token = await csrf_token(client, "/admin/users")
    me = seeded.users["admin@acme.example"]
    response = await client.post(f"/admin/users/{me}/deactivate", data={"csrf_token": token})
    assert response.status_code == 400 and "自分自身" in response.text


async def test_admin_sees_only_its_own_org(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await seed_org(app, "other", {"secret-person@other.example": Role.HOST})
    await sign_in(client, "admin@acme.example")
    assert "secret-person" not in (await client.get("/admin/users")).text
