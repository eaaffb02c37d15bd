"""SMS for join links: phone numbers, the gateways (against a real local HTTP server), the outbox, and the
admin's SMS送信履歴 page."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette

from core.errors import InvalidInput
from signaling.models import SmsMessage, SmsStatus
from signaling.phone import NOT_A_MOBILE, NOT_A_NUMBER, normalise_mobile
from signaling.sms import (
    OutboxGateway,
    SmsFailed,
    SmsGateway,
    SmsResult,
    TwilioGateway,
    make_gateway,
    org_messages,
    send_sms,
)
from store.models import Role
from tests.conftest import make_client
from tests.harness.ports import free_port
from tests.helpers import seed_org, sign_in
from web.services import services

# --- phone numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "090-1234-5678",
        "09012345678",
        "090 1234 5678",
        "(090) 1234-5678",
        "090.1234.5678",
        "０９０−１２３４−５６７８",  # full-width digits, U+2212 minus
        "０９０－１２３４－５６７８",  # full-width hyphen-minus
        "０９０ー１２３４ー５６７８",  # katakana long-vowel mark typed for a hyphen
        "０９０　１２３４　５６７８",  # ideographic spaces
        "+81 90 1234 5678",
        "+81-90-1234-5678",
        "+819012345678",
        "＋８１ ９０ １２３４ ５６７８",
        "+81 (0)90-1234-5678",
        "81 90 1234 5678",
        "819012345678",
        "  090-1234-5678\n",
    ],
)
def test_every_common_spelling_of_a_mobile_number_gives_e164(typed: str) -> None:
    assert normalise_mobile(typed) == "+819012345678"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("070-1234-5678", "+817012345678"),
        ("080-9876-5432", "+818098765432"),
        ("060-1234-5678", "+816012345678"),
    ],
)
def test_all_mobile_ranges(typed: str, expected: str) -> None:
    assert normalise_mobile(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "03-1234-5678",  # Tokyo landline
        "06-1234-5678",  # Osaka landline
        "045-123-4567",  # Yokohama landline
        "0120-123-456",  # toll-free
        "0800-123-4567",  # toll-free, starts like 080
        "0570-123-456",  # navi dial
        "050-1234-5678",  # IP phone
        "020-1234-5678",  # M2M / pager
        "+81 3 1234 5678",  # a landline written internationally
        "+81-50-1234-5678",
    ],
)
def test_japanese_numbers_that_are_not_mobiles_are_refused_as_such(typed: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalise_mobile(typed)
    assert info.value.message == NOT_A_MOBILE


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "090-1234-567",  # too short
        "0901234567",
        "090-1234-56789",  # too long
        "090123456789",
        "090-1234-567a",  # letters
        "090-abcd-5678",
        "tel:09012345678",
        "+1 415 555 0100",  # foreign: Japan only for now
        "+44 7700 900123",
        "+8190123456789",
        "9012345678",  # no trunk 0 and no country code
        "090+1234+5678",
        "٠٩٠١٢٣٤٥٦٧٨",  # Arabic-Indic digits are digits, but not ones people type for a Japanese number
        "0" * 200,
    ],
)
def test_malformed_numbers_are_refused_with_an_example(typed: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalise_mobile(typed)
    assert info.value.message == NOT_A_NUMBER


# --- a real HTTP server on 127.0.0.1 that plays the provider --------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class FakeProvider:
    """A minimal HTTP/1.1 server: records each request and answers with ``status`` and ``body``, or never
    answers when ``hang`` is set (until the test ends)."""

    status: int = 201
    body: str = ""
    hang: bool = False
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _version = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Recorded(method, path, headers, parse_qs(body.decode())))
            if self.hang:
                await asyncio.wait_for(self._release.wait(), 10)
                return
            payload = self.body.encode()
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    server = FakeProvider()
    await server.start()
    yield server
    await server.stop()


def twilio(url: str, timeout: float = 2.0) -> TwilioGateway:
    return TwilioGateway(url, "AC123", "s3cret-token", "+815012340000", timeout=timeout)


async def test_twilio_gateway_posts_the_message_and_keeps_the_sid(provider: FakeProvider) -> None:
    provider.body = json.dumps({"sid": "SM0123456789abcdef", "status": "queued"})
    gateway = twilio(provider.url)
    try:
        result = await gateway.send("+819012345678", "接続用URL: https://meet.example.jp/j/abc")
    finally:
        await gateway.aclose()
    assert result == SmsResult(SmsStatus.SENT, provider_id="SM0123456789abcdef")
    [request] = provider.requests
    assert request.method == "POST"
    assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:s3cret-token").decode()
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "To": ["+819012345678"],
        "From": ["+815012340000"],
        "Body": ["接続用URL: https://meet.example.jp/j/abc"],
    }


async def test_twilio_gateway_keeps_the_providers_4xx_message(provider: FakeProvider) -> None:
    provider.status = 400
    provider.body = json.dumps(
        {
            "code": 21211,
            "message": "The 'To' number +819000000000 is not a valid phone number.",
            "status": 400,
        }
    )
    gateway = twilio(provider.url + "/")  # a trailing slash in SMS_BASE_URL is fine
    try:
        result = await gateway.send("+819000000000", "hello")
    finally:
        await gateway.aclose()
    assert result.status == SmsStatus.FAILED and result.provider_id == ""
    assert "400" in result.error and "21211" in result.error
    assert "is not a valid phone number" in result.error
    assert provider.requests[0].path == "/2010-04-01/Accounts/AC123/Messages.json"


async def test_twilio_gateway_reports_a_5xx(provider: FakeProvider) -> None:
    provider.status = 503
    provider.body = "upstream overloaded"
    gateway = twilio(provider.url)
    try:
        result = await gateway.send("+819012345678", "hello")
    finally:
        await gateway.aclose()
    assert result.status == SmsStatus.FAILED
    assert "503" in result.error and "upstream overloaded" in result.error


async def test_twilio_gateway_gives_up_on_a_silent_server_within_its_timeout(provider: FakeProvider) -> None:
    provider.hang = True
    gateway = twilio(provider.url, timeout=0.5)
    started = time.monotonic()
    try:
        result = await gateway.send("+819012345678", "hello")
    finally:
        await gateway.aclose()
    assert time.monotonic() - started < 3
    assert result.status == SmsStatus.FAILED and "0.5 s" in result.error
    assert len(provider.requests) == 1  # it did reach the server, which never answered


async def test_twilio_gateway_reports_a_refused_connection() -> None:
    gateway = twilio(f"http://127.0.0.1:{free_port()}", timeout=2)
    try:
        result = await gateway.send("+819012345678", "hello")
    finally:
        await gateway.aclose()
    assert result.status == SmsStatus.FAILED and "could not reach" in result.error


async def test_outbox_gateway_sends_nothing() -> None:
    gateway = OutboxGateway()
    assert await gateway.send("+819012345678", "hello") == SmsResult(SmsStatus.STORED)
    await gateway.aclose()


async def test_gateway_is_made_from_plain_settings() -> None:
    assert isinstance(make_gateway("outbox"), OutboxGateway)
    gateway = make_gateway(
        "twilio",
        base_url="http://127.0.0.1:9",
        account_sid="AC1",
        auth_token="t",
        sender="+815012340000",
        timeout=3,
    )
    assert isinstance(gateway, TwilioGateway) and gateway.timeout == 3
    await gateway.aclose()
    with pytest.raises(ValueError, match="outbox, twilio"):
        make_gateway("carrier-pigeon")
    with pytest.raises(ValueError, match="SMS_AUTH_TOKEN, SMS_FROM"):
        make_gateway("twilio", account_sid="AC1")


# --- send_sms and the outbox -----------------------------------------------------------------------------


async def test_send_sms_keeps_stored_and_sent_messages(app: Starlette, provider: FakeProvider) -> None:
    seeded = await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    host = seeded.users["host@acme.example"]
    provider.body = json.dumps({"sid": "SMabc"})
    twilio_gateway = twilio(provider.url)
    try:
        async with services(app).sessions.begin() as db:
            stored = await send_sms(
                db,
                OutboxGateway(),
                org_id=seeded.org_id,
                sender_id=host,
                room_id=None,
                to="+819012345678",
                body="one",
            )
            assert stored.id is not None  # flushed
            sent = await send_sms(
                db,
                twilio_gateway,
                org_id=seeded.org_id,
                sender_id=host,
                room_id=None,
                to="+818012345678",
                body="two",
            )
    finally:
        await twilio_gateway.aclose()
    async with services(app).sessions() as db:
        rows = await org_messages(db, seeded.org_id)
    assert [(r.id, r.to, r.body, r.gateway, r.status, r.provider_id, r.error) for r in rows] == [
        (sent.id, "+818012345678", "two", "twilio", SmsStatus.SENT, "SMabc", ""),
        (stored.id, "+819012345678", "one", "outbox", SmsStatus.STORED, "", ""),
    ]
    assert rows[0].sender_id == host and rows[0].org_id == seeded.org_id


async def test_a_failed_send_raises_and_stays_in_the_outbox_once_committed(
    app: Starlette, provider: FakeProvider
) -> None:
    seeded = await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    provider.status = 400
    provider.body = json.dumps({"code": 21610, "message": "Attempt to send to unsubscribed recipient"})
    gateway = twilio(provider.url)
    try:
        # The caller's pattern from send_sms's docstring: commit, then let the error reach the host.
        with pytest.raises(SmsFailed) as info:
            async with services(app).sessions.begin() as db:
                try:
                    await send_sms(
                        db,
                        gateway,
                        org_id=seeded.org_id,
                        sender_id=None,
                        room_id=None,
                        to="+819012345678",
                        body="kept",
                    )
                except SmsFailed:
                    await db.commit()
                    raise
        # Without the commit the transaction rolls back and the attempt is lost: the reason for the pattern.
        with pytest.raises(SmsFailed):
            async with services(app).sessions.begin() as db:
                await send_sms(
                    db,
                    gateway,
                    org_id=seeded.org_id,
                    sender_id=None,
                    room_id=None,
                    to="+819012345678",
                    body="lost",
                )
    finally:
        await gateway.aclose()
    error = info.value
    assert error.status == 502 and error.code == "sms_failed"
    assert error.message.startswith("The SMS could not be sent.")
    assert error.sms is not None and error.sms.status == SmsStatus.FAILED
    async with services(app).sessions() as db:
        rows = await org_messages(db, seeded.org_id)
    assert [(r.body, r.gateway, r.status) for r in rows] == [("kept", "twilio", SmsStatus.FAILED)]
    assert "21610" in rows[0].error and "unsubscribed recipient" in rows[0].error


class _Failing(SmsGateway):
    name = "twilio"

    async def send(self, to: str, body: str) -> SmsResult:
        return SmsResult(SmsStatus.FAILED, error="HTTP 500")


async def test_org_messages_is_org_scoped_newest_first_and_limited(app: Starlette) -> None:
    acme = await seed_org(app, "acme", {"a@acme.example": Role.ADMIN})
    other = await seed_org(app, "other", {"a@other.example": Role.ADMIN})
    async with services(app).sessions.begin() as db:
        for n in range(3):
            await send_sms(
                db,
                OutboxGateway(),
                org_id=acme.org_id,
                sender_id=None,
                room_id=None,
                to="+819012345678",
                body=f"acme {n}",
            )
        await send_sms(
            db,
            OutboxGateway(),
            org_id=other.org_id,
            sender_id=None,
            room_id=None,
            to="+819012345678",
            body="other",
        )
        with pytest.raises(SmsFailed):
            await send_sms(
                db,
                _Failing(),
                org_id=acme.org_id,
                sender_id=None,
                room_id=None,
                to="+819012345678",
                body="acme failed",
            )
    async with services(app).sessions() as db:
        assert [m.body for m in await org_messages(db, acme.org_id)] == [
            "acme failed",
            "acme 2",
            "acme 1",
            "acme 0",
        ]
        assert [m.body for m in await org_messages(db, acme.org_id, limit=2)] == ["acme failed", "acme 2"]
        assert [m.body for m in await org_messages(db, other.org_id)] == ["other"]


# --- the admin's SMS送信履歴 -------------------------------------------------------------------------------


async def _seed_messages(app: Starlette, org_id: int, *rows: tuple[str, SmsStatus, str]) -> None:
    """Rows one minute apart, the first at 2026-04-01 00:30 UTC (09:30 in Japan)."""
    first = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
    async with services(app).sessions.begin() as db:
        for n, (body, status, error) in enumerate(rows):
            db.add(
                SmsMessage(
                    org_id=org_id,
                    to="+819012345678",
                    body=body,
                    gateway="twilio",
                    status=status,
                    error=error,
                    created_at=first + timedelta(minutes=n),
                )
            )


async def test_admin_sees_its_orgs_sms_history(app: Starlette, client: httpx.AsyncClient) -> None:
    acme = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    other = await seed_org(app, "other", {"admin@other.example": Role.ADMIN})
    long_body = "接続用URL: https://meet.example.jp/j/" + "x" * 300
    await _seed_messages(
        app,
        acme.org_id,
        ("in the outbox <b>bold?</b>", SmsStatus.STORED, ""),
        (long_body, SmsStatus.SENT, ""),
        ("refused", SmsStatus.FAILED, "HTTP 400 (code 21211): not a valid phone number"),
    )
    await _seed_messages(app, other.org_id, ("other org's secret", SmsStatus.SENT, ""))
    await sign_in(client, "admin@acme.example")
    response = await client.get("/admin/sms")
    assert response.status_code == 200
    page = response.text
    # Look only inside <main>: the page's head embeds the whole catalogue for the browser code.
    main = page[page.index("<main>") :]
    assert "<h1>SMS送信履歴</h1>" in main
    rows = re.findall(r'<tr data-status="(\w+)">(.*?)</tr>', main, flags=re.S)
    assert [status for status, _ in rows] == ["failed", "sent", "stored"]  # newest first
    failed, sent, stored = (cells for _, cells in rows)
    assert "送信失敗" in failed and "refused" in failed and "HTTP 400 (code 21211)" in failed
    assert "送信済み" in sent and long_body in sent and "+819012345678" in sent and "twilio" in sent
    assert "アウトボックスに保存(未送信)" in stored
    assert "2026-04-01 09:30" in stored and "2026-04-01 09:32" in failed  # shown in Japan time
    assert "&lt;b&gt;bold?&lt;/b&gt;" in stored and "<b>" not in stored  # the body is escaped
    # Long bodies wrap: by the stylesheet (the pages' CSP allows no style attributes).
    assert '<td class="sms-body">' in sent
    stylesheet = (await client.get("/static/app.css")).text
    assert re.search(r"td\.sms-body \{[^}]*overflow-wrap: anywhere", stylesheet)
    assert "secret" not in main  # nothing of the other org
    manage = (await client.get("/manage")).text
    assert 'href="/admin/sms"' in manage


async def test_sms_history_is_for_admins_only(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST, "manager@acme.example": Role.MANAGER})
    anonymous = await client.get("/admin/sms")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    await sign_in(client, "host@acme.example")
    assert (await client.get("/admin/sms")).status_code == 403
    assert 'href="/admin/sms"' not in (await client.get("/host")).text
    async with make_client(app) as manager:
        await sign_in(manager, "manager@acme.example")
        assert (await manager.get("/admin/sms")).status_code == 403
        assert 'href="/admin/sms"' not in (await manager.get("/manage")).text


async def test_empty_sms_history_in_english(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await sign_in(client, "admin@acme.example")
    page = (await client.get("/admin/sms", headers={"accept-language": "en"})).text
    main = page[page.index("<main>") :]
    assert "<h1>SMS history</h1>" in main and "No SMS has been sent yet." in main and "<table" not in main
