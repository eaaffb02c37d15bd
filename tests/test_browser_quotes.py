"""A quote in real Chromium: the host imports three items from an .xlsx made here and sends the quote;
the customer, on a phone profile, opens the link, unchecks one item (the total follows before confirming),
signs with a typed name and accepts; the same link's answer from a second phone is told the quote was already
answered; the deal shows the accepted total and the signature record."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from deals import pipeline
from deals.models import Customer
from store.models import User
from tests.calls import signed_in_host
from tests.harness.live import LiveServer
from web.services import services

pytestmark = pytest.mark.browser


def _sheet() -> bytes:
    book = Workbook()
    page = book.active
    assert page is not None
    for row in (
        ["品名", "数量", "単価", "ランク"],
        ["ソファ", 1, 30000, "A"],
        ["テーブル", 2, 12000, "B"],
        ["椅子", 4, 5000, ""],
    ):
        page.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _deal(server: LiveServer) -> int:
    async with services(server.app).sessions.begin() as db:
        host = await db.scalar(select(User).where(User.email == "host@acme.example"))
        assert host is not None
        customer = Customer(
            org_id=host.org_id, owner_id=host.id, name="鈴木 花子", email="hanako@example.com"
        )
        db.add(customer)
        await db.flush()
        now = datetime.fromtimestamp(services(server.app).clock(), UTC)
        deal = await pipeline.open_deal(db, host.org_id, customer.id, host.id, "家具の買取", now)
        return deal.id


def test_the_customer_accepts_two_of_three_items_on_a_phone_and_signs(
    server: LiveServer, new_context: Callable[..., Any]
) -> None:
    deal_id = server.call(_deal(server))
    host = signed_in_host(new_context, server)
    base = server.url
    host.goto(f"{base}/deals/{deal_id}")
    host.get_by_role("button", name="見積りを作成").click()
    host.wait_for_url(re.compile(r"/quotes/\d+$"))
    quote_url = host.url
    host.locator("#import-file").set_input_files(
        {"name": "見積.xlsx", "mimeType": "application/octet-stream", "buffer": _sheet()}
    )
    host.get_by_role("button", name="取り込む", exact=True).click()
    host.wait_for_url(re.compile(r"done=imported"))
    assert host.locator("#items-form tr[data-item]").count() == 3
    host.get_by_role("button", name="見積りを送信").click()
    link = host.locator("#quote-link")
    link.wait_for()
    token = re.search(r"/q/([\w-]+)$", link.get_attribute("href") or "")
    assert token, "the host sees the customer's link"

    phone = new_context(device="Pixel 7").new_page()
    phone.goto(f"{base}/q/{token.group(1)}")
    other = new_context(device="Pixel 7").new_page()  # the same link open on a second phone
    other.goto(f"{base}/q/{token.group(1)}")
    total = phone.locator("#answer-total")
    assert total.inner_text() == "81,400"  # 74,000 + 10 % tax
    phone.get_by_role("checkbox", name=re.compile("テーブル")).uncheck()
    phone.wait_for_function("() => document.getElementById('answer-total').textContent === '55,000'")
    phone.get_by_label("お名前（署名として入力）").fill("鈴木 花子")
    phone.get_by_role("button", name="チェックした明細で承諾する").click()
    phone.locator("#answer-done").wait_for()
    assert phone.locator("#final-total").inner_text() == "55,000"
    other.get_by_label("お名前（署名として入力）").fill("鈴木 一郎")
    other.get_by_role("button", name="すべてお断りする").click()
    other.get_by_text("この見積りはすでに回答済みです。").wait_for()  # the second answer is told, not kept

    host.goto(f"{base}/deals/{deal_id}")
    row = host.locator("#deal-quotes li[data-state='accepted']")
    assert "55,000円" in row.inner_text() and "鈴木 花子" in row.inner_text()
    assert row.locator(".signature").get_attribute("data-ip") == "127.0.0.1"
    assert host.locator("#deal-status").inner_text() == "成約"
    host.goto(quote_url)
    assert host.locator("#accepted-total").inner_text() == "55,000円"
    assert (
        "Pixel 7" in host.locator("#signature").inner_text()
        or "Android" in host.locator("#signature").inner_text()
    )
