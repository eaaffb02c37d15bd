"""Customers and deals in real Chromium: a host sends SMS links to one number written two ways and finds
both meetings on one customer page; then, for each of the four channel cases, sets the customer's contact
details, opens a deal and moves it to 見積提示, whose notice is checked at a real SMTP server on loopback
(aiosmtpd) and in the SMS outbox."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from deals import pipeline
from deals.models import Customer, CustomerMeeting, OutboxMessage, OutboxStatus
from store.models import Role
from tests.calls import signed_in_host
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.test_deals_notices import TEMPLATE, Smtp, free_port
from web.app import create_app
from web.services import services
from web.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture
def mail_server(settings: Settings, clock: ManualClock) -> Iterator[tuple[LiveServer, Smtp]]:
    smtp = Smtp(free_port())
    smtp.start()
    configured = replace(settings, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none")
    server = LiveServer(create_app(configured, clock=clock))
    server.start()
    yield server, smtp
    server.stop()
    smtp.stop()


async def _template_on_quote(server: LiveServer) -> None:
    async with services(server.app).sessions.begin() as db:
        seeded = await seed_org(server.app, "acme", {"host@acme.example": Role.HOST})
        quote = next(s for s in await pipeline.statuses(db, seeded.org_id) if s.name == "見積提示")
        quote.sms_text, quote.email_subject, quote.email_body = (
            TEMPLATE["sms_text"],
            TEMPLATE["email_subject"],
            TEMPLATE["email_body"],
        )


def _send_link(host: Any, base: str, phone: str) -> None:
    host.goto(f"{base}/host")
    host.locator("#sms-phone").fill(phone)
    host.get_by_role("button", name="SMSを送信").click()
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))


def test_one_customer_across_meetings_and_a_notice_by_each_channel(
    mail_server: tuple[LiveServer, Smtp], new_context: Callable[..., Any]
) -> None:
    server, smtp = mail_server
    server.call(_template_on_quote(server))
    host = signed_in_host(new_context, server)
    base = server.url

    _send_link(host, base, "090-1234-5678")
    _send_link(host, base, "＋８１ ９０ー１２３４ー５６７８")
    host.goto(f"{base}/customers")
    host.get_by_label("お名前・ふりがな・会社名・メール・電話番号で検索").fill("+81 90 1234 5678")
    host.get_by_role("button", name="検索", exact=True).click()
    host.locator("#customers-count", has_text="1件").wait_for()
    host.locator("#customers a").first.click()
    host.wait_for_url(re.compile(r"/customers/\d+$"))
    assert host.locator("#customer-meetings [data-record]").count() == 2
    customer_url = host.url

    async def stored() -> tuple[list[str], int]:
        async with services(server.app).sessions() as db:
            phones = list(await db.scalars(select(Customer.phone)))
            meetings = len(list(await db.scalars(select(CustomerMeeting.record_id))))
            return phones, meetings

    assert server.call(stored()) == (["+819012345678"], 2)

    cases = [  # (preferred channel label, email, expected channel, expected address)
        ("SMS", "sms@example.com", "sms", "+819012345678"),
        ("メール", "mail@example.com", "email", "mail@example.com"),
        ("指定なし（メール、なければSMS）", "unset@example.com", "email", "unset@example.com"),
        ("指定なし（メール、なければSMS）", "", "sms", "+819012345678"),
    ]
    for i, (channel, email, expected_channel, expected_to) in enumerate(cases):
        host.goto(customer_url)
        details = host.locator("#customer-details")
        details.get_by_label("お客さま名", exact=True).fill("山田 花子")
        details.get_by_label("メールアドレス", exact=True).fill(email)
        details.get_by_label("ご希望の連絡方法").select_option(label=channel)
        details.get_by_role("button", name="保存").click()
        host.get_by_text("お客さま情報を保存しました。").wait_for()
        host.get_by_label("案件名").fill(f"案件{i}")
        host.get_by_role("button", name="案件を作成").click()
        host.wait_for_url(re.compile(r"/deals/\d+$"))
        host.locator("#status-form").get_by_label("新しいステータス").select_option(label="見積提示")
        host.locator("#status-form").get_by_role("button", name="変更").click()
        host.get_by_text("ステータスを変更しました。").wait_for()
        assert host.locator("#deal-status").text_content() == "見積提示"
        deal_id = int(host.url.split("/deals/")[1].split("?")[0])

        async def notice(deal: int = deal_id) -> OutboxMessage | None:
            async with services(server.app).sessions() as db:
                return await db.scalar(select(OutboxMessage).where(OutboxMessage.deal_id == deal))

        message = server.call(notice())
        assert message is not None and (message.channel, message.to) == (expected_channel, expected_to), i
        expected_status = OutboxStatus.SENT if expected_channel == "email" else OutboxStatus.STORED
        assert message.status == expected_status
        assert "山田 花子様" in message.body
    assert [m["To"] for m in smtp.inbox.messages] == ["mail@example.com", "unset@example.com"]
    assert all(m["Subject"] == "ACME: お見積りのご案内" for m in smtp.inbox.messages)
