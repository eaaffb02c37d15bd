"""The org's default memo template: admins choose one (one at a time, their own org only); a new meeting's
memo starts with its text, exactly once — host and guest joining at the same moment do not get it twice,
and neither a reconnect nor a restarted server fills a memo that was emptied meanwhile. Real sockets."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import select
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection

from recordings.models import MemoUpdate
from signaling.protocol import SUBPROTOCOL
from signaling.rooms import memo_text
from store.models import MemoTemplate
from store.models import Role as UserRole
from tests.conftest import make_client
from tests.harness.live import LiveServer
from tests.helpers import csrf_token, seed_org, sign_in
from tests.joining import Browser, receive
from tests.test_memo import Client
from web.services import services

TEMPLATE = "■ご要望\n■ご予算\n■導入時期"


async def add_shared(client: httpx.AsyncClient, title: str, default: bool) -> httpx.Response:
    token = await csrf_token(client, "/memo-templates")
    data = {"title": title, "body": TEMPLATE if default else f"{title}の本文", "csrf_token": token}
    data["default" if default else "shared"] = "1"
    return await client.post("/memo-templates", data=data)


async def defaults(app: Starlette) -> list[str]:
    async with services(app).sessions() as db:
        return list(await db.scalars(select(MemoTemplate.title).where(MemoTemplate.is_default.is_(True))))


async def test_admins_choose_one_default_in_their_own_org(app: Starlette) -> None:
    await seed_org(app, "acme", {"admin@acme.example": UserRole.ADMIN, "host@acme.example": UserRole.HOST})
    await seed_org(app, "other", {"admin@other.example": UserRole.ADMIN})
    async with make_client(app) as admin, make_client(app) as host, make_client(app) as foreign:
        await sign_in(admin, "admin@acme.example")
        await sign_in(host, "host@acme.example")
        await sign_in(foreign, "admin@other.example")
        assert (await add_shared(admin, "ヒアリング", default=True)).status_code == 303
        assert (await add_shared(admin, "お礼", default=False)).status_code == 303
        assert await defaults(app) == ["ヒアリング"]
        listed = (await host.get("/api/memo-templates")).json()["templates"]
        ids = {t["title"]: t["id"] for t in listed}
        assert {t["title"]: t["default"] for t in listed} == {"ヒアリング": True, "お礼": False}

        token = await csrf_token(admin, "/memo-templates")
        made = await admin.post(
            f"/memo-templates/{ids['お礼']}/default", data={"csrf_token": token, "default": "1"}
        )
        assert made.status_code == 303
        assert await defaults(app) == ["お礼"]  # the other one stopped being the default
        page = (await admin.get("/memo-templates")).text
        assert "既定" in page

        # Hosts and other orgs cannot change it, and cannot tell that the template exists.
        for client, email in ((host, "host"), (foreign, "foreign")):
            token = await csrf_token(client, "/memo-templates")
            refused = await client.post(
                f"/memo-templates/{ids['ヒアリング']}/default", data={"csrf_token": token, "default": "1"}
            )
            assert refused.status_code == 404, email
        assert await defaults(app) == ["お礼"]
        personal = await host.post(
            "/memo-templates",
            data={"title": "自分用", "body": "x", "csrf_token": await csrf_token(host, "/memo-templates")},
        )
        assert personal.status_code == 303
        own = next(
            t["id"] for t in (await host.get("/api/memo-templates")).json()["templates"] if not t["shared"]
        )
        token = await csrf_token(admin, "/memo-templates")
        assert (  # a host's own template is never the org's default, even for an admin
            await admin.post(f"/memo-templates/{own}/default", data={"csrf_token": token, "default": "1"})
        ).status_code == 404

        token = await csrf_token(admin, "/memo-templates")
        cleared = await admin.post(
            f"/memo-templates/{ids['お礼']}/default", data={"csrf_token": token, "default": "0"}
        )
        assert cleared.status_code == 303 and await defaults(app) == []


async def memo_after_join(ws: ClientConnection, client: Client) -> str:
    """Join the memo as the browser does (our step 1, the server's step 2), and return the text seen."""
    await ws.send(json.dumps(client.step1().model_dump()))
    for _ in range(50):
        frame = await receive(ws)
        if frame["type"] == "memo.sync":
            answer = client.receive(frame["data"])
            if answer is not None:
                await ws.send(json.dumps(answer.model_dump()))
            if str(client.text):
                return str(client.text)
    raise AssertionError("the memo never arrived")


async def stored_rows(app: Starlette, room_id: str) -> list[tuple[str, bytes]]:
    async with services(app).sessions() as db:
        result = await db.execute(
            select(MemoUpdate.author, MemoUpdate.update)
            .where(MemoUpdate.room_id == room_id)
            .order_by(MemoUpdate.id)
        )
        return [(author, update) for author, update in result]


async def test_a_new_meetings_memo_starts_with_the_default_once(live_server: LiveServer) -> None:
    app = live_server.app
    live_server.call(
        seed_org(app, "acme", {"admin@acme.example": UserRole.ADMIN, "host@acme.example": UserRole.HOST})
    )
    admin, host, guest = (Browser(live_server.url) for _ in range(3))
    try:
        await admin.sign_in("admin@acme.example")
        response = await admin.http.post(
            "/memo-templates",
            data={"title": "ヒアリング", "body": TEMPLATE, "default": "1", "csrf_token": admin.csrf},
        )
        assert response.status_code == 303
        await host.sign_in("host@acme.example")
        await guest.open("/")
        number = (await guest.post_json("/api/numbers")).json()["number"]
        room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
        rows = live_server.call(stored_rows(app, room_id))
        assert [author for author, _ in rows] == ["host"]  # written with the room, before anyone joined

        path = f"/ws/rooms/{room_id}"
        async with (
            host.websocket(path, [SUBPROTOCOL]) as host_ws,
            guest.websocket(path, [SUBPROTOCOL]) as guest_ws,
        ):
            # Both join at the same moment (a barrier, not one after the other).
            seen = await asyncio.gather(
                memo_after_join(host_ws, Client()), memo_after_join(guest_ws, Client())
            )
            assert list(seen) == [TEMPLATE, TEMPLATE]
            # The host empties the memo, then both drop and come back.
            emptier = Client()
            await memo_after_join(host_ws, emptier)
            await host_ws.send(json.dumps(emptier.edit(0, delete=len(TEMPLATE)).model_dump()))

            async def emptied() -> bool:
                await services(app).hub.settle(room_id)
                room = services(app).hub.room(room_id)
                return room is not None and room.memo.text() == ""

            assert live_server.call(emptied())
        async with (
            host.websocket(path, [SUBPROTOCOL]) as host_ws,
            guest.websocket(path, [SUBPROTOCOL]) as guest_ws,
        ):
            for ws in (host_ws, guest_ws):
                client = Client()
                await ws.send(json.dumps(client.step1().model_dump()))
                frame = await receive(ws)
                while frame["type"] != "memo.sync":
                    frame = await receive(ws)
                client.receive(frame["data"])
                assert str(client.text) == ""  # not filled again

        # What a restarted node would load (hub.open reads the stored log): still empty.
        async def saved() -> str:
            async with services(app).sessions() as db:
                return await memo_text(db, room_id)

        assert live_server.call(saved()) == ""
    finally:
        for browser in (admin, host, guest):
            await browser.aclose()


async def test_without_a_default_the_memo_starts_empty(live_server: LiveServer) -> None:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": UserRole.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    try:
        await host.sign_in("host@acme.example")
        await guest.open("/")
        number = (await guest.post_json("/api/numbers")).json()["number"]
        room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
        assert live_server.call(stored_rows(live_server.app, room_id)) == []
    finally:
        await host.aclose()
        await guest.aclose()
