"""Notices of a status change, against a real SMTP server on loopback (aiosmtpd) and the SMS outbox: the
channel in each case (preferred SMS, preferred email, none given with an email, none given without one, and
neither), placeholders filled, a status without a template sending nothing, and a failing server: the
message is kept as failed with its error, and resent once after the server is back, received exactly once
even when two resends race."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from starlette.applications import Starlette

from core.clock import ManualClock
from deals import pipeline
from deals.models import Channel, OutboxMessage, OutboxStatus
from tests.helpers import Seeded, seed_org
from tests.test_deals import PEOPLE, client_of, form_post, make_customer, make_deals
from web.app import create_app
from web.services import services
from web.settings import Settings


@dataclass
class Inbox:
    """What the SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Smtp:
    port: int
    inbox: Inbox = field(default_factory=Inbox)
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp(free_port())
    yield server
    server.stop()


@pytest.fixture
async def mail_app(settings: Settings, clock: ManualClock, smtp: Smtp) -> AsyncIterator[Starlette]:
    configured = replace(settings, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none")
    app = create_app(configured, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


TEMPLATE = {
    "name": "見積提示",
    "survey": "quote",
    "sms_text": "{customer_name}様 {company}の{host_name}です。お見積りをお送りしました {link}",
    "email_subject": "{company}: お見積りのご案内",
    "email_body": "{customer_name}様\n{host_name}よりお見積りをお送りしました。\n{link}\n{unknown}",
}


async def _quote_with_template(app: Starlette, seeded: Seeded) -> int:
    async with services(app).sessions.begin() as db:
        statuses = await pipeline.statuses(db, seeded.org_id)
    quote = next(s for s in statuses if s.name == "見積提示")
    admin = await client_of(app, "admin@acme.example")
    try:
        path = f"/deal-settings/statuses/{quote.id}"
        assert (await form_post(admin, "/deal-settings", path, TEMPLATE)).status_code == 303
    finally:
        await admin.aclose()
    return quote.id


async def _change(client: httpx.AsyncClient, deal: int, status: int) -> httpx.Response:
    return await form_post(client, f"/deals/{deal}", f"/deals/{deal}/status", {"status": status})


async def _outbox(app: Starlette) -> list[OutboxMessage]:
    async with services(app).sessions() as db:
        return list(await db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_each_channel_case_sends_the_template_by_the_right_way(mail_app: Starlette, smtp: Smtp) -> None:
    smtp.start()
    app = mail_app
    acme = await seed_org(app, "acme", PEOPLE)
    quote = await _quote_with_template(app, acme)
    cases: dict[str, dict[str, Any]] = {
        "sms-preferred": dict(channel=Channel.SMS, phone="+819011110001", email="a@example.com"),
        "email-preferred": dict(channel=Channel.EMAIL, phone="+819011110002", email="b@example.com"),
        "unset-email": dict(channel=Channel.UNSET, phone="+819011110003", email="c@example.com"),
        "unset-mobile": dict(channel=Channel.UNSET, phone="+819011110004", email=""),
        "neither": dict(channel=Channel.UNSET, phone="+81312345678", email=""),  # a landline takes no SMS
    }
    deals = {}
    for name, fields in cases.items():
        customer = await make_customer(app, acme, "host@acme.example", name=f"{name}さん", **fields)
        (deals[name],) = await make_deals(app, acme, customer, "host@acme.example", 1)
    host = await client_of(app, "host@acme.example")
    try:
        page = (await host.get(f"/deals/{deals['neither']}")).text
        assert "お知らせを送信できません" in page
        for deal in deals.values():
            assert (await _change(host, deal, quote)).status_code == 303
        sent = {m.deal_id: m for m in await _outbox(app)}
        assert (sent[deals["sms-preferred"]].channel, sent[deals["sms-preferred"]].to) == (
            "sms",
            "+819011110001",
        )
        assert (sent[deals["email-preferred"]].channel, sent[deals["email-preferred"]].to) == (
            "email",
            "b@example.com",
        )
        assert (sent[deals["unset-email"]].channel, sent[deals["unset-email"]].to) == (
            "email",
            "c@example.com",
        )
        assert (sent[deals["unset-mobile"]].channel, sent[deals["unset-mobile"]].to) == (
            "sms",
            "+819011110004",
        )
        assert sent[deals["neither"]].status == OutboxStatus.NO_CONTACT
        assert {m.status for m in sent.values() if m.channel == "sms"} == {OutboxStatus.STORED}  # SMS outbox
        assert {m.status for m in sent.values() if m.channel == "email"} == {OutboxStatus.SENT}
        sms = sent[deals["unset-mobile"]].body
        assert sms.startswith("unset-mobileさん様 ACMEのhostです。") and "/g/acme" in sms

        received = {m["To"]: m for m in smtp.inbox.messages}
        assert sorted(received) == ["b@example.com", "c@example.com"]
        mail = received["c@example.com"]
        assert mail["Subject"] == "ACME: お見積りのご案内"
        body = str(mail.get_content()).replace("\r\n", "\n")
        assert body.startswith("unset-emailさん様\nhostよりお見積り") and "{unknown}" in body
        assert mail["Message-ID"] == f"<{sent[deals['unset-email']].message_id}>"
        shown = (await host.get(f"/deals/{deals['neither']}")).text
        assert 'id="no-contact">未送信: 連絡先なし<' in shown

        async with services(app).sessions() as db:
            hold = next(s for s in await pipeline.statuses(db, acme.org_id) if s.name == "保留")
        before = len(await _outbox(app))
        confirm = await form_post(
            host, "/deals", "/deals/bulk-status", {"deal": deals["unset-email"], "status": hold.id}
        )
        assert "「保留」にはメッセージテンプレートがないため" in confirm.text  # said before the change
        assert (await _change(host, deals["unset-email"], hold.id)).status_code == 303
        assert len(await _outbox(app)) == before and len(smtp.inbox.messages) == 2
    finally:
        await host.aclose()


async def test_a_failed_email_is_kept_with_its_error_and_resent_exactly_once(
    mail_app: Starlette, smtp: Smtp
) -> None:
    app = mail_app  # the SMTP server is not started yet: nothing listens on its port
    acme = await seed_org(app, "acme", PEOPLE)
    quote = await _quote_with_template(app, acme)
    customer = await make_customer(app, acme, "host@acme.example", name="再送", email="r@example.com")
    (deal,) = await make_deals(app, acme, customer, "host@acme.example", 1)
    host = await client_of(app, "host@acme.example")
    other = await client_of(app, "host2@acme.example")
    try:
        assert (await _change(host, deal, quote)).status_code == 303  # the change stands
        (failed,) = await _outbox(app)
        assert failed.status == OutboxStatus.FAILED and failed.error and failed.attempts == 1
        page = (await host.get(f"/deals/{deal}")).text
        assert "送信失敗" in page and f'action="/outbox/{failed.id}/resend"' in page
        assert 'id="deal-status">見積提示<' in page

        refused = await form_post(other, "/deals", f"/outbox/{failed.id}/resend", {})
        assert refused.status_code == 404  # not the other host's deal

        smtp.start()
        token = (await host.get(f"/deals/{deal}")).text.split('name="csrf_token" value="')[1].split('"')[0]
        barrier = asyncio.Event()

        async def resend() -> int:
            await barrier.wait()
            response = await host.post(f"/outbox/{failed.id}/resend", data={"csrf_token": token})
            return response.status_code

        racing = [asyncio.create_task(resend()) for _ in range(2)]
        await asyncio.sleep(0)
        barrier.set()
        assert await asyncio.gather(*racing) == [303, 303]
        assert (await form_post(host, f"/deals/{deal}", f"/outbox/{failed.id}/resend", {})).status_code == 303
        (message,) = await _outbox(app)
        assert message.status == OutboxStatus.SENT and message.error == "" and message.attempts == 2
        assert [m["To"] for m in smtp.inbox.messages] == ["r@example.com"]  # exactly once
    finally:
        await host.aclose()
        await other.aclose()
