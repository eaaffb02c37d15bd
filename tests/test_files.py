"""ファイル送信 over HTTP: both ways, the size limit, interrupted sends, names, headers, who may see it."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from core.storage import Storage
from recordings.files import room_files, sanitise_file_name
from recordings.models import RoomFile
from signaling.models import RoomRow, RoomState
from signaling.protocol import SUBPROTOCOL
from store.models import Org, Role
from tests.conftest import make_client, storage_url_for
from tests.harness.live import LiveServer
from tests.helpers import PASSWORD, csrf_from, seed_org, sign_in
from tests.joining import Browser, until
from web.files import content_disposition
from web.services import services

MB = 1024 * 1024
PART = 5 * MB  # the S3 part size the tests' STORAGE_URL sets: a send longer than this is a multipart upload


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest) -> str | None:
    """Every test that has an app runs on this box's disk and on a real S3 server."""
    return storage_url_for(request, request.param)


@dataclass
class Side:
    client: httpx.AsyncClient
    csrf: str


@dataclass
class Meeting:
    room_id: str
    host: Side
    guest: Side


async def _host(app: Starlette, email: str) -> Side:
    client = make_client(app)
    await sign_in(client, email)
    return Side(client, csrf_from((await client.get("/host")).text))


async def _meeting(app: Starlette, host: Side) -> Meeting:
    guest = make_client(app)
    token = csrf_from((await guest.get("/")).text)
    issued = await guest.post(
        "/api/numbers", json={}, headers={"X-CSRF-Token": token, "Accept": "application/json"}
    )
    number = issued.json()["number"]
    created = await host.client.post(
        "/api/rooms",
        json={"number": number},
        headers={"X-CSRF-Token": host.csrf, "Accept": "application/json"},
    )
    assert created.status_code == 201, created.text
    return Meeting(created.json()["room_id"], host, Side(guest, token))


@pytest.fixture
async def meeting(app: Starlette) -> AsyncIterator[Meeting]:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    host = await _host(app, "host@acme.example")
    meeting = await _meeting(app, host)
    yield meeting
    await meeting.host.client.aclose()
    await meeting.guest.client.aclose()


async def send(side: Side, room_id: str, name: str, data: bytes, **headers: str) -> httpx.Response:
    return await side.client.post(
        f"/api/rooms/{room_id}/files",
        params={"name": name},
        content=data,
        headers={"X-CSRF-Token": side.csrf, "Accept": "application/json", **headers},
    )


async def rows(app: Starlette) -> list[RoomFile]:
    async with services(app).sessions() as db:
        return list(await db.scalars(select(RoomFile)))


async def stored_files(app: Starlette) -> list[str]:
    """The keys of sent files in storage, and any write not finished (there must be none after a request)."""
    storage: Storage = services(app).storage
    return await storage.keys("files/") + await storage.unfinished()


async def set_host_file_send(app: Starlette, allowed: bool) -> None:
    async with services(app).sessions.begin() as db:
        await db.execute(update(Org).values(host_file_send=allowed))


async def test_guest_file_reaches_the_host_byte_identical(app: Starlette, meeting: Meeting) -> None:
    data = os.urandom(3 * MB + 17)
    sent = await send(
        meeting.guest, meeting.room_id, "見積書 2026.pdf", data, **{"Content-Type": "application/pdf"}
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["name"] == "見積書 2026.pdf" and body["size"] == len(data) and body["sender"] == "guest"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()

    listing = await meeting.host.client.get(f"/api/rooms/{meeting.room_id}/files")
    assert listing.status_code == 200
    assert [(f["id"], f["sender"]) for f in listing.json()["files"]] == [(body["id"], "guest")]
    downloaded = await meeting.host.client.get(body["url"])
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert downloaded.headers["x-content-type-options"] == "nosniff"
    disposition = downloaded.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote('見積書 2026.pdf', safe='')}" in disposition
    assert 'filename="___ 2026.pdf"' in disposition  # the ASCII fallback
    # The guest, its sender, may fetch it too; the meeting record lists it.
    assert (await meeting.guest.client.get(body["url"])).status_code == 200
    async with services(app).sessions() as db:
        assert [row.sha256 for row in await room_files(db, meeting.room_id)] == [body["sha256"]]


async def test_downloads_answer_range_requests(app: Starlette, meeting: Meeting) -> None:
    """Range, If-Range, HEAD and 416 as Starlette's FileResponse answers them, on either storage; a send
    longer than a part (a multipart upload on S3) comes back byte-identical."""
    data = os.urandom(PART + 3 * MB + 5)
    sent = await send(meeting.guest, meeting.room_id, "video.webm", data, **{"Content-Type": "video/webm"})
    assert sent.status_code == 201, sent.text
    url, http = sent.json()["url"], meeting.host.client
    whole = await http.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == str(len(data))
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]

    middle = await http.get(url, headers={"Range": f"bytes={PART - 10}-{PART + 9}"})
    assert middle.status_code == 206 and middle.content == data[PART - 10 : PART + 10]
    assert middle.headers["content-range"] == f"bytes {PART - 10}-{PART + 9}/{len(data)}"
    assert middle.headers["content-length"] == "20" and middle.headers["content-type"] == "video/webm"
    tail = await http.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == data[-100:]
    rest = await http.get(url, headers={"Range": f"bytes={len(data) - 7}-"})
    assert rest.status_code == 206 and rest.content == data[-7:]

    beyond = await http.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert (await http.get(url, headers={"Range": "lines=1-2"})).status_code == 400

    for validator in (etag, modified):
        resumed = await http.get(url, headers={"Range": "bytes=10-19", "If-Range": validator})
        assert resumed.status_code == 206 and resumed.content == data[10:20]
    stale = await http.get(url, headers={"Range": "bytes=10-19", "If-Range": '"another version"'})
    assert stale.status_code == 200 and stale.content == data  # a changed file is sent whole

    several = await http.get(url, headers={"Range": "bytes=0-4,100-104,102-110"})
    assert several.status_code == 206
    boundary = several.headers["content-type"].split("boundary=")[1]
    assert several.headers["content-type"].startswith("multipart/byteranges")
    body = several.content
    assert int(several.headers["content-length"]) == len(body) and body.endswith(f"--{boundary}--".encode())
    assert b"Content-Range: bytes 0-4/" in body and data[0:5] in body
    assert b"Content-Range: bytes 100-110/" in body and data[100:111] in body

    head = await http.head(url)
    assert (
        head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(data))
    )
    assert head.headers["etag"] == etag


async def test_host_to_guest_is_refused_when_the_org_forbids_it(app: Starlette, meeting: Meeting) -> None:
    allowed = await send(meeting.host, meeting.room_id, "brochure.pdf", b"hello guest")
    assert allowed.status_code == 201 and allowed.json()["sender"] == "host"
    listing = await meeting.host.client.get(f"/api/rooms/{meeting.room_id}/files")
    assert listing.json()["can_send"] is True

    await set_host_file_send(app, False)
    refused = await send(meeting.host, meeting.room_id, "brochure.pdf", b"hello guest")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "host_file_send_off"
    assert "担当者からのファイル送信はできません" in refused.json()["error"]["message"]
    assert (await meeting.host.client.get(f"/api/rooms/{meeting.room_id}/files")).json()["can_send"] is False
    # The guest may always send.
    assert (await meeting.guest.client.get(f"/api/rooms/{meeting.room_id}/files")).json()["can_send"] is True
    assert (await send(meeting.guest, meeting.room_id, "reply.txt", b"thanks")).status_code == 201
    assert len(await rows(app)) == 2


async def test_body_longer_than_declared_is_refused(app: Starlette, meeting: Meeting) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000

    response = await meeting.guest.client.post(
        f"/api/rooms/{meeting.room_id}/files?name=a.bin",
        content=body(),
        headers={"X-CSRF-Token": meeting.guest.csrf, "Accept": "application/json", "Content-Length": "1500"},
    )
    assert response.status_code == 413
    assert "50 MB" in response.json()["error"]["message"]
    assert await rows(app) == [] and await stored_files(app) == []


async def test_a_declared_size_over_the_limit_and_a_missing_size(app: Starlette, meeting: Meeting) -> None:
    over = await meeting.guest.client.post(
        f"/api/rooms/{meeting.room_id}/files?name=big.bin",
        content=b"",
        headers={
            "X-CSRF-Token": meeting.guest.csrf,
            "Content-Length": str(50 * MB + 1),
            "Accept": "application/json",
        },
    )
    assert over.status_code == 413 and over.json()["error"]["code"] == "file_too_large"
    assert "一度に送信できるのは 50 MB まで" in over.json()["error"]["message"]
    empty = await send(meeting.guest, meeting.room_id, "empty.txt", b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_file"
    assert await rows(app) == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\yamada\\見積書.xlsx", "見積書.xlsx"),
        ("a\x00b\x1b[31mc\u202e.txt", "ab[31mc.txt"),
        ("  tabs\tand\nnew lines .pdf ", "tabs and new lines .pdf"),
        ("..", "file"),
        ("", "file"),
        ("資" * 300 + ".pdf", "資" * 83 + ".pdf"),  # 255 bytes at most, the extension kept
    ],
)
def test_file_names_are_sanitised(raw: str, clean: str) -> None:
    assert sanitise_file_name(raw) == clean


async def test_sent_names_are_sanitised_and_the_ascii_fallback_is_safe(
    app: Starlette, meeting: Meeting
) -> None:
    sent = await send(meeting.guest, meeting.room_id, '../x/"evil";\r\nname.html', b"<script>1</script>")
    assert sent.status_code == 201
    assert sent.json()["name"] == '"evil"; name.html'
    response = await meeting.host.client.get(sent.json()["url"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith('attachment; filename="_evil__ name.html";')
    assert (
        content_disposition("報告.pdf")
        == "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.pdf"
    )
    assert [key.rsplit("/", 1)[1] for key in await stored_files(app)] == [str(sent.json()["id"])]


async def test_strangers_get_404(app: Starlette, meeting: Meeting) -> None:
    sent = await send(meeting.guest, meeting.room_id, "secret.pdf", b"secret")
    url = sent.json()["url"]
    # Another meeting's guest (same host, same org).
    other = await _meeting(app, meeting.host)
    # Another org's host.
    await seed_org(app, "other", {"host@other.example": Role.HOST})
    foreign = await _host(app, "host@other.example")
    # Nobody at all.
    stranger = make_client(app)
    stranger_side = Side(stranger, csrf_from((await stranger.get("/")).text))
    try:
        for side in (other.guest, foreign, stranger_side):
            assert (await side.client.get(url)).status_code == 404
            assert (await side.client.get(f"/api/rooms/{meeting.room_id}/files")).status_code == 404
            assert (await send(side, meeting.room_id, "x.txt", b"x")).status_code == 404
        # The other meeting's guest cannot reach the file through its own room either.
        assert (
            await other.guest.client.get(f"/rooms/{other.room_id}/files/{sent.json()['id']}")
        ).status_code == 404
        assert (await meeting.host.client.get(f"/rooms/{meeting.room_id}/files/999999")).status_code == 404
        assert len(await rows(app)) == 1
    finally:
        await other.guest.client.aclose()
        await foreign.client.aclose()
        await stranger.aclose()


async def test_ended_rooms_refuse_sends(app: Starlette, meeting: Meeting) -> None:
    async with services(app).sessions.begin() as db:
        await db.execute(update(RoomRow).where(RoomRow.id == meeting.room_id).values(state=RoomState.ENDED))
    for side in (meeting.guest, meeting.host):
        refused = await send(side, meeting.room_id, "late.pdf", b"too late")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "room_ended"
        assert refused.json()["error"]["message"] == "商談は終了しました。"
    assert await rows(app) == [] and await stored_files(app) == []


# --- against a live server: the announcement, a size refused before reading, an interrupted send -----------


@pytest.fixture
async def live_meeting(live_server: LiveServer) -> AsyncIterator[tuple[LiveServer, Browser, Browser, str]]:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    yield live_server, host, guest, room_id
    await host.aclose()
    await guest.aclose()


def _raw_request(server: LiveServer, browser: Browser, room_id: str, length: int) -> bytes:
    cookie = "; ".join(f"{name}={value}" for name, value in browser.http.cookies.items())
    port = int(server.url.rsplit(":", 1)[1])
    return (
        f"POST /api/rooms/{room_id}/files?name=part.bin HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nX-CSRF-Token: {browser.csrf}\r\n"
        f"Accept: application/json\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _files_and_rows(server: LiveServer) -> tuple[list[str], int]:
    async def count() -> int:
        async with services(server.app).sessions() as db:
            return len(list(await db.scalars(select(RoomFile.id))))

    return server.call(stored_files(server.app)), server.call(count())


async def test_the_other_side_hears_of_a_file(live_meeting: tuple[LiveServer, Browser, Browser, str]) -> None:
    _server, host, guest, room_id = live_meeting
    async with host.websocket(f"/ws/rooms/{room_id}", [SUBPROTOCOL]) as host_ws:
        await until(host_ws, "welcome")
        data = os.urandom(2 * MB)
        sent = await guest.http.post(
            f"/api/rooms/{room_id}/files",
            params={"name": "写真.jpg"},
            content=data,
            headers={"X-CSRF-Token": guest.csrf, "Accept": "application/json"},
        )
        assert sent.status_code == 201, sent.text
        shared = await until(host_ws, "file.shared")
        expected = {"id": sent.json()["id"], "name": "写真.jpg", "size": len(data), "sender": "guest"}
        assert shared["file"] == expected
        got = await host.http.get(f"/rooms/{room_id}/files/{shared['file']['id']}")
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()


async def test_over_the_limit_is_refused_before_reading(
    live_meeting: tuple[LiveServer, Browser, Browser, str],
) -> None:
    server, _host_browser, guest, room_id = live_meeting
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(_raw_request(server, guest, room_id, 50 * MB + 1))  # headers only: not a byte of body
        answer = sock.recv(65536).decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert _files_and_rows(server) == ([], 0)


async def test_an_interrupted_send_leaves_nothing(
    live_meeting: tuple[LiveServer, Browser, Browser, str],
) -> None:
    """The sender goes away after a part has reached storage (on S3 a multipart upload has begun): the part
    file is removed, the multipart upload aborted, and no row is written."""
    server, _host_browser, guest, room_id = live_meeting
    storage: Storage = services(server.app).storage
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(_raw_request(server, guest, room_id, 3 * PART))
        sock.sendall(os.urandom(PART + MB))
        for _ in range(250):  # bounded: the unfinished write exists while the body streams in
            if server.call(storage.unfinished()):
                break
            time.sleep(0.02)  # noqa: ASYNC251 - the server runs in its own thread
        assert len(server.call(storage.unfinished())) == 1
        assert server.call(storage.keys()) == []  # nothing readable meanwhile
    for _ in range(250):  # bounded: up to 5 s for the server to notice and clean up
        if _files_and_rows(server) == ([], 0):
            break
        time.sleep(0.02)  # noqa: ASYNC251 - the server runs in its own thread
    assert _files_and_rows(server) == ([], 0)


async def test_admins_switch_host_sending_in_the_org_settings(app: Starlette, meeting: Meeting) -> None:
    await seed_org_admin(app)
    async with make_client(app) as admin:
        await sign_in(admin, "admin@acme.example")
        page = await admin.get("/admin/settings")
        assert (
            'name="host_file_send"' in page.text
            and "checked" in page.text.split('name="host_file_send"')[1][:40]
        )
        saved = await admin.post("/admin/settings", data={"name": "ACME", "csrf_token": csrf_from(page.text)})
        assert saved.status_code == 303
        async with services(app).sessions() as db:
            assert await db.scalar(select(Org.host_file_send).where(Org.slug == "acme")) is False
    refused = await send(meeting.host, meeting.room_id, "brochure.pdf", b"hello guest")
    assert refused.status_code == 403


async def seed_org_admin(app: Starlette) -> None:
    from web import accounts

    async with services(app).sessions.begin() as db:
        org = await db.scalar(select(Org).where(Org.slug == "acme"))
        assert org is not None
        await accounts.add_user(db, org, "admin@acme.example", "admin", Role.ADMIN, PASSWORD)
