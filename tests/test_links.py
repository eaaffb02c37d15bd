"""SMS join links over HTTP: phone numbers, the outbox, single use, expiry, gateway failures; the QR code."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from xml.etree import ElementTree

import httpx
import pytest
import segno
from sqlalchemy import select
from starlette.applications import Starlette

from core.clock import ManualClock
from signaling.models import RoomRow, RoomState, SmsMessage, SmsStatus
from store.models import Role
from tests.conftest import make_client
from tests.helpers import PASSWORD, csrf_from, seed_org, sign_in
from tests.test_sms import FakeProvider, provider  # noqa: F401 - a fixture
from web.app import create_app
from web.services import services
from web.settings import Settings


async def host_client(app: Starlette) -> httpx.AsyncClient:
    client = make_client(app)
    await sign_in(client, "host@acme.example")
    return client


async def post(
    client: httpx.AsyncClient, path: str, body: dict[str, object], page: str = "/host"
) -> httpx.Response:
    token = csrf_from((await client.get(page)).text)
    return await client.post(path, json=body, headers={"X-CSRF-Token": token, "Accept": "application/json"})


@pytest.fixture
async def host(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    client = await host_client(app)
    yield client
    await client.aclose()


async def outbox(app: Starlette) -> list[SmsMessage]:
    async with services(app).sessions() as db:
        return list(await db.scalars(select(SmsMessage).order_by(SmsMessage.id)))


async def send_link(host: httpx.AsyncClient, phone: str = "090-1234-5678") -> httpx.Response:
    return await post(host, "/api/rooms/link", {"phone": phone, "camera": True, "recording": True})


def link_in(sms: SmsMessage) -> str:
    return re.search(r"/j/[\w-]+", sms.body).group(0)  # type: ignore[union-attr]


async def test_landlines_and_nonsense_are_refused_clearly(app: Starlette, host: httpx.AsyncClient) -> None:
    landline = await send_link(host, "03-1234-5678")
    assert landline.status_code == 400
    assert "携帯電話の番号ではありません" in landline.json()["error"]["message"]
    nonsense = await send_link(host, "hello")
    assert nonsense.status_code == 400 and "090-1234-5678" in nonsense.json()["error"]["message"]
    assert await outbox(app) == []


async def test_link_is_sent_once_and_opens_the_room_once(app: Starlette, host: httpx.AsyncClient) -> None:
    response = await send_link(host, "+81 90 1234 5678")
    assert response.status_code == 201
    (sms,) = await outbox(app)
    assert sms.to == "+819012345678" and sms.status == SmsStatus.STORED and "30分間有効" in sms.body
    path = link_in(sms)
    async with make_client(app) as guest, make_client(app) as stranger:
        page = await guest.get(path)
        assert page.status_code == 200 and "接続する" in page.text and "利用規約" in page.text
        accepted = await guest.post(
            f"/api/links/{path[3:]}/accept", headers={"X-CSRF-Token": csrf_from(page.text)}
        )
        assert accepted.json() == {"url": response.json()["url"]}
        assert (await guest.get(response.json()["url"])).status_code == 200
        other_page = await stranger.get(path)
        assert other_page.status_code == 409 and "すでに使用されています" in other_page.text
        again = await stranger.post(
            f"/api/links/{path[3:]}/accept",
            headers={"X-CSRF-Token": csrf_from((await stranger.get("/")).text), "Accept": "application/json"},
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "link_used"
        assert (await stranger.get(response.json()["url"])).status_code == 404


async def test_link_expires_after_thirty_minutes(
    app: Starlette, host: httpx.AsyncClient, clock: ManualClock
) -> None:
    await send_link(host)
    await send_link(host, "080-9999-0000")
    first, second = (link_in(sms) for sms in await outbox(app))
    async with make_client(app) as guest:
        clock.advance(30 * 60 - 0.1)
        assert (await guest.get(first)).status_code == 200
        clock.advance(0.1)
        late = await guest.get(second)
        assert late.status_code == 410 and "有効期限が切れています" in late.text
        unknown = await guest.get("/j/not-a-real-token")
        assert unknown.status_code == 404 and "このURLは無効です" in unknown.text


def twilio_app(settings: Settings, clock: ManualClock, fake: FakeProvider) -> Starlette:
    """The app sending its SMS through the Twilio gateway, pointed at the fake provider."""
    twilio = replace(
        settings,
        sms_gateway="twilio",
        sms_base_url=fake.url,
        sms_account_sid="AC1",
        sms_auth_token="t",
        sms_from="+815000000000",
    )
    return create_app(twilio, clock=clock)


async def test_gateway_failure_reaches_the_host_and_stays_in_the_outbox(
    settings: Settings,
    clock: ManualClock,
    provider: FakeProvider,  # noqa: F811
) -> None:
    provider.status, provider.body = (
        400,
        '{"code": 21211, "message": "The \\u0027To\\u0027 number is not valid."}',
    )
    app = twilio_app(settings, clock, provider)
    async with app.router.lifespan_context(app):
        await seed_org(app, "acme", {"host@acme.example": Role.HOST})
        host = await host_client(app)
        failed = await send_link(host)
        await host.aclose()
        assert failed.status_code == 502 and "SMSを送信できませんでした" in failed.json()["error"]["message"]
        (sms,) = await outbox(app)
        assert sms.status == SmsStatus.FAILED and "21211" in sms.error and sms.gateway == "twilio"
        async with services(app).sessions() as db:
            room = await db.scalar(select(RoomRow))
        assert room is not None and room.state == RoomState.ENDED  # nobody is left waiting for it
    assert provider.requests[0].form["To"] == ["+819012345678"]


async def test_qr_code_encodes_the_orgs_guest_page(host: httpx.AsyncClient) -> None:
    shown = await host.get("/host/qr.svg")
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("image/svg+xml")
    expected = io.BytesIO()
    segno.make("http://testserver/g/acme", error="m").save(expected, kind="svg", scale=6, border=2)
    assert shown.content == expected.getvalue()
    assert ElementTree.fromstring(shown.content).tag == "{http://www.w3.org/2000/svg}svg"  # a standalone SVG
    assert "content-disposition" not in shown.headers
    download = await host.get("/host/qr.svg?download=1")
    assert download.headers["content-disposition"].startswith("attachment;")
    page = (await host.get("/host")).text
    assert 'href="http://testserver/g/acme"' in page and 'src="/host/qr.svg"' in page


async def test_the_host_is_told_plainly_that_the_outbox_only_stores(
    app: Starlette, host: httpx.AsyncClient
) -> None:
    before = (await host.get("/host")).text
    assert 'id="sms-outbox"' in before and "SMSは実際には送信されません" in before
    assert 'href="/admin/sms"' not in before  # a host cannot open the SMS history; an admin gets the link
    sent = await send_link(host)
    assert sent.status_code == 201 and sent.json()["sms"] == {"status": "stored", "to": "+819012345678"}
    call = (await host.get(sent.json()["url"])).text
    assert 'id="sms-notice"' in call and "090-1234-5678 へのSMSは送信されていません" in call
    await seed_admin_and_check_link(app)


async def seed_admin_and_check_link(app: Starlette) -> None:
    async with services(app).sessions.begin() as db:
        from web import accounts

        org = await accounts.org_by_slug(db, "acme")
        await accounts.add_user(db, org, "admin@acme.example", "admin", Role.ADMIN, PASSWORD)
    async with make_client(app) as admin:
        await sign_in(admin, "admin@acme.example")
        assert 'href="/admin/sms"' in (await admin.get("/host")).text.split('id="sms-outbox"', 1)[1]
        sent = await send_link(admin)
        call = (await admin.get(sent.json()["url"])).text
        assert 'href="/admin/sms"' in call.split('id="sms-notice"', 1)[1].split("</p>", 1)[0]


async def test_a_sent_sms_is_confirmed_on_the_hosts_screen(
    settings: Settings,
    clock: ManualClock,
    provider: FakeProvider,  # noqa: F811
) -> None:
    provider.body = '{"sid": "SM123"}'
    app = twilio_app(settings, clock, provider)
    async with app.router.lifespan_context(app):
        await seed_org(app, "acme", {"host@acme.example": Role.HOST})
        host = await host_client(app)
        try:
            assert 'id="sms-outbox"' not in (await host.get("/host")).text
            sent = await send_link(host, "080-1111-2222")
            assert sent.json()["sms"] == {"status": "sent", "to": "+818011112222"}
            call = (await host.get(sent.json()["url"])).text
            assert "080-1111-2222 にSMSを送信しました" in call
        finally:
            await host.aclose()
