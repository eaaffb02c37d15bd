"""The guest マイページ in real Chromium on a phone profile: after a call (a memo typed, a file sent by the
host), the host ties the meeting to the customer's number and sends the page link; the guest's phone, the
browser of the call, opens it without a code, reads the memo, downloads the file (byte-identical), saves
the host's card and answers the quote the host sent after the call (2 of 3 items, typed name) from the page;
a fresh browser is asked for the code instead."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from deals import pipeline, quotes
from deals.models import Customer, OutboxMessage
from deals.quote_models import Quote, QuoteState
from recordings.models import MeetingRecord
from store.models import Role
from tests.calls import PHONE, issue_number, signed_in_host, type_number
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.test_browser_memo import same_memo
from web.services import services

pytestmark = pytest.mark.browser

MEMO = "次回までに見積りを送ります"


async def send_quote(server: LiveServer) -> int:
    """The host's quote to the customer of the call, made and sent with the quotes functions in the live
    app (the host's quote pages have their own browser test)."""
    async with services(server.app).sessions.begin() as db:
        customer = await db.scalar(select(Customer).where(Customer.phone == "+819012345678"))
        assert customer is not None
        now = datetime.fromtimestamp(services(server.app).clock(), UTC)
        deal = await pipeline.open_deal(db, customer.org_id, customer.id, customer.owner_id, "点検", now)
        quote = await quotes.new_quote(db, deal, customer.owner_id, now)
        quote.title = "点検費用のお見積り"
        lines = [
            quotes.ItemInput(None, "点検作業", 1, 20_000),
            quotes.ItemInput(None, "出張費", 1, 8_000),
            quotes.ItemInput(None, "部品交換", 1, 10_000),
        ]
        await quotes.replace_items(db, quote, lines)
        await quotes.send(db, quote, now, 21)
        return quote.id


def test_after_the_call_the_guest_keeps_the_memo_the_file_and_the_card(
    live_server: LiveServer, new_context: Callable[..., Any]
) -> None:
    server = live_server
    server.call(seed_org(server.app, "acme", {"host@acme.example": Role.HOST}))
    guest = new_context(device=PHONE, accept_downloads=True).new_page()
    guest.goto(f"{server.url}/g/acme")
    host = signed_in_host(new_context, server)
    type_number(host, issue_number(guest))
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    guest.wait_for_url(host.url)
    host.get_by_text("お客さまが接続しています。").wait_for()
    room_id = host.url.rsplit("/", 1)[1]

    host.locator("#memo-text").click()
    host.locator("#memo-text").press_sequentially(MEMO, delay=5)
    assert same_memo(host, guest) == MEMO
    body = secrets.token_bytes(300_000)
    host.get_by_role("button", name="ファイル送信").click()
    host.locator("#files-input").set_input_files(
        files=[{"name": "お見積り.bin", "mimeType": "application/octet-stream", "buffer": body}]
    )
    host.get_by_role("button", name="送信する", exact=True).click()
    guest.get_by_role("button", name="ファイル", exact=True).click()
    guest.locator("#files-incoming").get_by_text("お見積り.bin").wait_for()
    host.get_by_role("button", name="終了").click()
    host.get_by_text("商談を終了しました。").wait_for()

    async def record_id() -> int:
        async with services(server.app).sessions() as db:
            found = await db.scalar(select(MeetingRecord.id).where(MeetingRecord.room_id == room_id))
            assert found is not None
            return found

    host.goto(f"{server.url}/records/{server.call(record_id())}")
    host.locator("#record-customer input[name=phone]").fill("090-1234-5678")
    host.locator("#record-customer button").click()
    host.wait_for_url(re.compile(r"/customers/\d+$"))
    host.get_by_role("button", name="マイページのURLを送信").click()
    host.get_by_text("マイページのURLを送信しました。").wait_for()

    async def sent_link() -> str:
        async with services(server.app).sessions() as db:
            message = await db.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1))
            assert message is not None and message.channel == "sms" and message.to == "+819012345678"
            found = re.search(r"/my/[\w-]+", message.body)
            assert found, message.body
            return found.group(0)

    link = f"{server.url}{server.call(sent_link())}"
    quote_id = server.call(send_quote(server))  # "send me the price": a quote of 3 items, sent
    guest.goto(link)  # the phone of the call: straight in
    guest.wait_for_url(f"{server.url}/my")
    assert guest.locator(".mypage-memo").inner_text() == MEMO
    with guest.expect_download() as file_download:
        guest.get_by_role("link", name="お見積り.bin").click()
    downloaded = Path(file_download.value.path()).read_bytes()
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(body).digest()
    with guest.expect_download() as card_download:
        guest.get_by_role("link", name="担当者の名刺を連絡先に保存").click()
    card = Path(card_download.value.path()).read_text(encoding="utf-8")
    assert card.startswith("BEGIN:VCARD") and "FN:" in card
    listed = guest.locator(f"#mypage-quotes [data-quote='{quote_id}']")
    assert "点検費用のお見積り" in listed.inner_text() and "41,800" in listed.inner_text()  # tax included
    listed.get_by_role("link", name="見積りに回答する").click()  # the quote's own page, from the マイページ
    guest.wait_for_url(re.compile(r"/q/[\w-]+$"))
    guest.get_by_role("checkbox", name=re.compile("部品交換")).uncheck()
    guest.wait_for_function("() => document.getElementById('answer-total').textContent === '30,800'")
    guest.get_by_label("お名前（署名として入力）").fill("山田 太郎")
    guest.get_by_role("button", name="チェックした明細で承諾する").click()
    assert guest.locator("#final-total").inner_text() == "30,800"

    async def answered() -> tuple[QuoteState, int | None, str]:
        async with services(server.app).sessions() as db:
            quote = await db.get(Quote, quote_id)
            assert quote is not None
            return quote.state, quote.accepted_total, quote.signer_name

    assert server.call(answered()) == (QuoteState.ACCEPTED, 30_800, "山田 太郎")
    guest.goto(f"{server.url}/my")  # answered: shown read-only, nothing left to answer
    listed = guest.locator(f"#mypage-quotes [data-quote='{quote_id}']")
    assert listed.get_attribute("data-state") == "accepted" and "30,800" in listed.inner_text()
    assert listed.get_by_role("link", name="見積りに回答する").count() == 0

    stranger = new_context(device=PHONE).new_page()  # another browser: asked for a code first
    stranger.goto(link)
    stranger.get_by_role("button", name="認証コードを送信").wait_for()
    assert "次回までに" not in stranger.content()
