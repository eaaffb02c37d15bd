"""資料共有 over real sockets: both sides follow the host's pages, and the meeting record keeps the dwell
per page with the times the (manual) clock gave."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.clock import ManualClock
from documents.models import Document, DocumentKind, DocumentStatus
from recordings.records import dwell_seconds, page_views
from signaling.protocol import SUBPROTOCOL
from store.models import Role
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import Browser, receive_type, until
from web.services import services

V1 = [SUBPROTOCOL]


async def add_document(server: LiveServer, org_id: int, owner_id: int, **fields: object) -> int:
    async def insert() -> int:
        async with services(server.app).sessions.begin() as db:
            document = Document(
                org_id=org_id,
                owner_id=owner_id,
                name=str(fields.get("name", "会社案内.pdf")),
                kind=fields.get("kind", DocumentKind.SLIDES),
                status=fields.get("status", DocumentStatus.READY),
                pages=int(fields.get("pages", 10)),  # type: ignore[call-overload]
                rendered=int(fields.get("pages", 10)),  # type: ignore[call-overload]
                org_wide=bool(fields.get("org_wide", False)),
            )
            db.add(document)
            await db.flush()
            return document.id

    return server.call(insert())


@pytest.fixture
async def room(live_server: LiveServer) -> AsyncIterator[tuple[Browser, Browser, str, dict[str, int]]]:
    acme = live_server.call(
        seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST, "other@acme.example": Role.HOST})
    )
    other_org = live_server.call(seed_org(live_server.app, "other", {"host@other.example": Role.HOST}))
    documents = {
        "slides": await add_document(live_server, acme.org_id, acme.users["host@acme.example"]),
        "processing": await add_document(
            live_server, acme.org_id, acme.users["host@acme.example"], status=DocumentStatus.PROCESSING
        ),
        "colleague": await add_document(live_server, acme.org_id, acme.users["other@acme.example"]),
        "shared": await add_document(
            live_server, acme.org_id, acme.users["other@acme.example"], org_wide=True, pages=3
        ),
        "foreign": await add_document(
            live_server, other_org.org_id, other_org.users["host@other.example"], org_wide=True
        ),
    }
    host, guest = Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    yield host, guest, room_id, documents
    await host.aclose()
    await guest.aclose()


async def test_pages_follow_and_the_record_keeps_the_dwell(
    room: tuple[Browser, Browser, str, dict[str, int]], live_server: LiveServer, clock: ManualClock
) -> None:
    host, guest, room_id, documents = room
    path = f"/ws/rooms/{room_id}"
    async with host.websocket(path, V1) as host_ws, guest.websocket(path, V1) as guest_ws:
        await receive_type(guest_ws, "welcome")
        assert (await receive_type(guest_ws, "doc.state"))["document"] is None
        await host_ws.send(f'{{"type": "doc.open", "document_id": {documents["slides"]}}}')
        opened = await until(guest_ws, "doc.state", page=1)
        assert opened["document"] == {
            "id": documents["slides"],
            "name": "会社案内.pdf",
            "kind": "slides",
            "pages": 10,
        }
        clock.advance(10)
        await host_ws.send('{"type": "doc.page", "page": 2}')
        await until(guest_ws, "doc.state", page=2)
        clock.advance(15)
        await host_ws.send('{"type": "doc.page", "page": 3}')
        await until(guest_ws, "doc.state", page=3)
        clock.advance(5)
        await host_ws.send('{"type": "doc.page", "page": 1}')
        await until(guest_ws, "doc.state", page=1)

        await guest_ws.send('{"type": "doc.page", "page": 5}')
        refused = await receive_type(guest_ws, "error")
        assert refused["code"] == "not_allowed" and "担当者のみ" in refused["message"]

        clock.advance(20)
        await host_ws.send('{"type": "doc.close"}')
        assert (await until(guest_ws, "doc.state", page=1))["document"] is None

    async def dwell() -> dict[tuple[int, int], float]:
        await services(live_server.app).hub.flush()  # page views are written just after the frames go out
        async with services(live_server.app).sessions() as db:
            return dwell_seconds(await page_views(db, room_id))

    slides = documents["slides"]
    assert live_server.call(dwell()) == {(slides, 1): 10.0 + 20.0, (slides, 2): 15.0, (slides, 3): 5.0}


async def test_only_ready_documents_of_the_hosts_library_open(
    room: tuple[Browser, Browser, str, dict[str, int]],
) -> None:
    host, _guest, room_id, documents = room
    async with host.websocket(f"/ws/rooms/{room_id}", V1) as host_ws:
        await receive_type(host_ws, "doc.state")
        for refused in ("processing", "colleague", "foreign"):
            await host_ws.send(f'{{"type": "doc.open", "document_id": {documents[refused]}}}')
            error = await receive_type(host_ws, "error")
            assert error["code"] == "not_allowed" and "表示できません" in error["message"], refused
        await host_ws.send(f'{{"type": "doc.open", "document_id": {documents["shared"]}}}')
        assert (await receive_type(host_ws, "doc.state"))["document"]["pages"] == 3  # org-wide: allowed


async def test_a_reconnecting_guest_lands_on_the_current_page(
    room: tuple[Browser, Browser, str, dict[str, int]],
) -> None:
    host, guest, room_id, documents = room
    path = f"/ws/rooms/{room_id}"
    async with host.websocket(path, V1) as host_ws:
        await receive_type(host_ws, "doc.state")
        await host_ws.send(f'{{"type": "doc.open", "document_id": {documents["slides"]}}}')
        await until(host_ws, "doc.state", page=1)
        await host_ws.send('{"type": "doc.page", "page": 7}')
        await until(host_ws, "doc.state", page=7)
        async with guest.websocket(path, V1) as guest_ws:
            state = await receive_type(guest_ws, "doc.state")
            assert state["page"] == 7 and state["document"]["id"] == documents["slides"]
