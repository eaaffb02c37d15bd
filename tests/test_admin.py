"""The admin's user pages, and org isolation across every route with an object id."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from documents.models import Document, DocumentStatus
from recordings.models import RoomFile
from signaling.models import JoinedVia
from signaling.rooms import create_room
from store.models import MemoTemplate, Role
from tests.conftest import make_client
from tests.helpers import PASSWORD, csrf_token, seed_org, sign_in
from web.services import services


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


# Every path parameter a route may take, and how to find org B's object for it. A new route with a new
# parameter fails test_org_a_gets_404_for_every_object_of_org_b until it is added here.
OBJECT_PARAMETERS = {
    "user_id": "user",
    "room_id": "room",
    "document_id": "document",
    "template_id": "template",
    "file_id": "file",
}
# Page numbers (/documents/{document_id}/pages/{n}.jpg) are not objects of their own: they are substituted
# with 1, a page that exists, so the 404 comes from the document's org and not from a missing page.
PAGE_NUMBER_PARAMETERS = {"n"}
# Card image slots (/cards/{user_id}/{slot}.jpg) are substituted with "photo"; a route whose only parameter is
# a slot (/api/card/images/{slot}/delete) acts on the caller's own card, so it has no object of org B.
SLOT_PARAMETERS = {"slot"}
# Parameters of public, guest-facing routes: an org's guest page by its slug, and single-use join-link
# tokens (whose own rules are tested in tests/test_links.py). Signing in grants nothing more on them.
PUBLIC_PARAMETERS = {"slug", "token"}


async def test_org_a_gets_404_for_every_object_of_org_b(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "org-a", {"admin@a.example": Role.ADMIN})
    org_b = await seed_org(app, "org-b", {"admin@b.example": Role.ADMIN, "host@b.example": Role.HOST})
    async with services(app).sessions.begin() as db:
        room, _record = await create_room(
            db,
            org_id=org_b.org_id,
            host_id=org_b.users["host@b.example"],
            via=JoinedVia.NUMBER,
            guest_token="guest-of-b",
            camera=True,
            recording=False,
            home_node="test",
            now=0,
        )
        document = Document(
            org_id=org_b.org_id,
            owner_id=org_b.users["host@b.example"],
            name="b.pdf",
            org_wide=True,
            status=DocumentStatus.READY,
            pages=1,
            rendered=1,
        )  # a row is enough: org A must get 404 before any file is looked for
        db.add(document)
        template = MemoTemplate(org_id=org_b.org_id, owner_id=None, title="b", body="b")
        db.add(template)
        room_file = RoomFile(
            room_id=room.id, org_id=org_b.org_id, sender="guest", name="b", size=1, sha256=""
        )
        db.add(room_file)
        await db.flush()
    objects_of_b = {
        "user": org_b.users["host@b.example"],
        "room": room.id,
        "document": document.id,
        "template": template.id,
        "file": room_file.id,
    }
    await sign_in(client, "admin@a.example")
    token = await csrf_token(client, "/admin/users")
    checked = []
    for route in app.routes:
        path = getattr(route, "path", "")
        params = re.findall(r"{(\w+)(?::\w+)?}", path)
        if (
            not params
            or set(params) <= PUBLIC_PARAMETERS | SLOT_PARAMETERS
            or isinstance(route, WebSocketRoute)
        ):
            continue
        for name in set(params) - PAGE_NUMBER_PARAMETERS - SLOT_PARAMETERS:
            assert name in OBJECT_PARAMETERS, f"route {path}: add {name!r} to OBJECT_PARAMETERS"
        concrete = re.sub(
            r"{(\w+)(?::\w+)?}",
            lambda m: (
                "1"
                if m.group(1) in PAGE_NUMBER_PARAMETERS
                else "photo"
                if m.group(1) in SLOT_PARAMETERS
                else str(objects_of_b[OBJECT_PARAMETERS[m.group(1)]])
            ),
            path,
        )
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            response = await client.request(method, concrete, data={"csrf_token": token})
            assert response.status_code == 404, f"{method} {concrete} -> {response.status_code}"
            checked.append(f"{method} {path}")
    assert len(checked) >= 2
    # And org B's host is untouched.
    async with make_client(app) as b_host:
        assert (await sign_in(b_host, "host@b.example", PASSWORD)).status_code == 303
