"""Finding 8: after a meeting ended its guest could still fetch the files and memo.txt, while the pages of
the documents shown were cut off at once. One rule now: what was exchanged stays open to the guest for
GUEST_ACCESS_AFTER_END_HOURS (24 h) after the end, then closes. Time moves on the manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from core.clock import ManualClock
from documents.models import Document, DocumentStatus
from signaling.protocol import SUBPROTOCOL
from store.models import Role
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from tests.helpers import seed_org
from tests.joining import Browser, receive_type, until
from web.services import services

DAY = 24 * 3600


@dataclass
class Ended:
    host: Browser
    guest: Browser
    file: str
    memo: str
    page: str


async def wait_until_ready(server: LiveServer, document_id: int) -> None:
    async def status() -> DocumentStatus:
        async with services(server.app).sessions() as db:
            document = await db.get(Document, document_id)
            assert document is not None
            return document.status

    server.call(services(server.app).documents.idle(), timeout=60)  # the worker renders it
    assert server.call(status()) == DocumentStatus.READY


@pytest.fixture
async def ended(live_server: LiveServer) -> AsyncIterator[Ended]:
    """A meeting in which the guest sent a file, both typed in the memo and the host showed a document;
    then the host ended it."""
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    uploaded = await host.http.post(
        "/api/documents?name=catalogue.pdf",
        content=text_pdf(2),
        headers={"X-CSRF-Token": host.csrf, "Accept": "application/json"},
    )
    document_id = uploaded.json()["id"]
    await wait_until_ready(live_server, document_id)
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    sent = await guest.http.post(
        f"/api/rooms/{room_id}/files?name=見積依頼.txt",
        content="見積をお願いします".encode(),
        headers={"X-CSRF-Token": guest.csrf, "Accept": "application/json"},
    )
    assert sent.status_code == 201, sent.text
    async with host.websocket(f"/ws/rooms/{room_id}", [SUBPROTOCOL]) as host_ws:
        await receive_type(host_ws, "welcome")
        await host_ws.send(f'{{"type": "doc.open", "document_id": {document_id}}}')
        await until(host_ws, "doc.state")
        await host_ws.send('{"type": "end"}')
        await until(host_ws, "ended")
    page = f"/documents/{document_id}/pages/1.jpg"
    yield Ended(host, guest, sent.json()["url"], f"/rooms/{room_id}/memo.txt", page)
    await host.aclose()
    await guest.aclose()


async def statuses(browser: Browser, ended: Ended) -> list[int]:
    return [(await browser.http.get(path)).status_code for path in (ended.file, ended.memo, ended.page)]


async def test_the_guest_may_fetch_files_memo_and_pages_for_a_day_after_the_end(
    ended: Ended, clock: ManualClock
) -> None:
    assert await statuses(ended.guest, ended) == [200, 200, 200]  # pages were cut off at once before
    clock.advance(DAY - 1)
    assert await statuses(ended.guest, ended) == [200, 200, 200]
    clock.advance(1)
    assert await statuses(ended.guest, ended) == [410, 410, 404]  # files and memo: 410, as everything else
    gone = await ended.guest.http.get(ended.file, headers={"Accept": "application/json"})
    assert gone.json()["error"]["code"] == "guest_access_ended"
    assert "終了から24時間以上たった" in gone.json()["error"]["message"]
    await ended.host.sign_in("host@acme.example")  # its session of yesterday has expired (12 h)
    assert await statuses(ended.host, ended) == [200, 200, 200]  # the host keeps the meeting record's
