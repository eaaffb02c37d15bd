"""The managers' console in real Chromium: a manager finds a meeting by a Japanese word typed during a real
call and sees what happened in it; and a manager sits in on a live call, read-only."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from store.models import Org, Role
from tests.calls import PHONE, issue_number, meeting, signed_in_host, type_number
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from tests.helpers import PASSWORD, seed_org
from tests.test_browser_documents import upload
from tests.test_browser_memo import same_memo
from web.services import services

pytestmark = pytest.mark.browser
COUNTER = "text => document.querySelector('[data-doc-counter]')?.textContent === text"
MEMO_VIEW = "text => document.getElementById('memo-view').textContent === text"
PEOPLE = {"host@acme.example": Role.HOST, "host2@acme.example": Role.HOST, "boss@acme.example": Role.MANAGER}


@pytest.fixture
def acme(live_server: LiveServer) -> LiveServer:
    live_server.call(seed_org(live_server.app, "acme", PEOPLE))
    return live_server


def sign_in(new_context: Callable[..., Any], server: LiveServer, email: str, **options: Any) -> Any:
    page = new_context(**options).new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("メールアドレス").fill(email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(re.compile(r"/(host|manage)$"))
    return page


def test_a_manager_finds_a_meeting_by_a_word_typed_in_it_and_sees_what_happened(
    acme: LiveServer, new_context: Callable[..., Any], clock: ManualClock, tmp_path: Path
) -> None:
    server = acme
    host = signed_in_host(new_context, server)
    slides = upload(host, "会社案内.pdf", text_pdf(3))
    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/g/acme")
    type_number(host, issue_number(guest))
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    guest.wait_for_url(host.url)
    host.get_by_text("お客さまが接続しています。").wait_for()

    # The memo: a line each, typed in the call.
    host.locator("#memo-text").click()
    host.locator("#memo-text").press_sequentially("お見積もりの件", delay=10)
    same_memo(host, guest)
    guest.get_by_role("button", name="共有メモ", exact=True).click()  # the phone's memo sheet
    guest.locator("#memo-text").click()
    guest.keyboard.press("Control+End")
    guest.locator("#memo-text").press_sequentially("\n来週までに回答します", delay=10)
    assert same_memo(host, guest) == "お見積もりの件\n来週までに回答します"

    # A document: page 1 for 40 s, page 2 for 20 s (the server's clock is moved by hand).
    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{slides}"]').click()
    guest.wait_for_function(COUNTER, arg="1 / 3ページ")
    clock.advance(40)
    host.keyboard.press("ArrowRight")
    guest.wait_for_function(COUNTER, arg="2 / 3ページ")
    clock.advance(20)
    host.keyboard.press("Escape")
    guest.locator("#viewer").wait_for(state="hidden")

    # A file from the customer, sent the way its page sends one.
    room_id = host.url.rsplit("/", 1)[1]
    token = guest.evaluate("document.body.dataset.csrf")
    sent = guest.request.post(
        f"{server.url}/api/rooms/{room_id}/files?name=ご要望.txt",
        data="台数は10台".encode(),
        headers={"X-CSRF-Token": token, "Content-Type": "text/plain"},
    )
    assert sent.status == 201, sent.text()
    host.get_by_role("button", name="終了").click()
    host.get_by_text("商談を終了しました。").wait_for()

    manager = sign_in(new_context, server, "boss@acme.example", accept_downloads=True)
    manager.get_by_role("link", name="商談記録").first.click()
    manager.get_by_role("searchbox").fill("見積")
    manager.get_by_role("button", name="検索").click()
    manager.wait_for_url(re.compile(r"/records\?q="))
    assert manager.locator("#records-count").inner_text() == "1件"
    row = manager.locator("tbody tr")
    assert "お見積もりの件" in row.inner_text() and "会社案内.pdf" in row.inner_text()
    row.get_by_role("link").first.click()
    manager.wait_for_url(re.compile(r"/records/\d+$"))

    lines = manager.locator(".memo-lines li")
    assert lines.nth(0).locator(".memo-line-text").inner_text() == "お見積もりの件"
    assert lines.nth(0).locator(".memo-line-meta").inner_text().startswith("担当者")
    assert lines.nth(1).locator(".memo-line-text").inner_text() == "来週までに回答します"
    assert lines.nth(1).locator(".memo-line-meta").inner_text().startswith("お客さま")
    chart = manager.locator(f'figure.dwell[data-document="{slides}"]')
    assert "会社案内.pdf" in chart.locator("figcaption").inner_text()
    bars = chart.locator("svg g[data-label]")
    assert [bars.nth(i).get_attribute("data-value") for i in range(bars.count())] == ["40", "20", "0"]
    assert chart.locator("svg").get_attribute("role") == "img"
    with manager.expect_download() as download_info:
        manager.get_by_role("link", name="ご要望.txt").click()
    assert Path(download_info.value.path()).read_bytes() == "台数は10台".encode()
    agreed = manager.locator("#acknowledgements").inner_text()  # on the org's guest page, before the number
    assert "に同意 (接続ナンバー)" in agreed and "利用規約" in agreed

    # Hosts see only their own meetings.
    mine = sign_in(new_context, server, "host@acme.example")
    mine.goto(f"{server.url}/records?q=見積")
    assert mine.locator("#records-count").inner_text() == "1件"
    other = sign_in(new_context, server, "host2@acme.example")
    other.goto(f"{server.url}/records?q=見積")
    assert other.locator("#records-count").inner_text() == "0件"
    assert other.goto(manager.url).status == 404


SPY_ON_SOCKETS = """
window.framesSent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.framesSent.push(String(data));
  return send.call(this, data);
};
"""


def frames_growing(page: Any, slot: int, within: float = 10.0) -> None:
    """Wait (bounded) until 10 more frames are decoded on the sit-in page's m-line ``slot``."""
    read = "slot => window.tsunaguSitIn.framesDecoded(slot)"
    deadline = time.monotonic() + within
    first = page.evaluate(read, slot)
    while page.evaluate(read, slot) < first + 10:
        assert time.monotonic() < deadline, f"m-line {slot}: no video within {within} s"
        page.wait_for_timeout(100)


def test_a_manager_sits_in_read_only_and_the_participants_see_it(
    acme: LiveServer, new_context: Callable[..., Any]
) -> None:
    server = acme
    host, guest = meeting(new_context, server, device=PHONE)
    manager_context = new_context()
    manager_context.add_init_script(SPY_ON_SOCKETS)
    manager = manager_context.new_page()
    manager.goto(f"{server.url}/login")
    manager.get_by_label("メールアドレス").fill("boss@acme.example")
    manager.get_by_label("パスワード").fill(PASSWORD)
    manager.get_by_role("button", name="ログイン").click()
    manager.wait_for_url(re.compile(r"/manage$"))
    manager.get_by_role("link", name="商談中").first.click()
    manager.get_by_role("link", name="同席する").click()
    manager.wait_for_url(re.compile(r"/live/[0-9a-f]{32}$"))

    # Both cameras through the relay: the customer's (m-line 1) and the representative's (m-line 0).
    frames_growing(manager, 1)
    frames_growing(manager, 0)
    for participant in (host, guest):
        participant.get_by_text("上長が同席中").wait_for()
    # The memo as it is typed.
    host.locator("#memo-text").click()
    host.locator("#memo-text").press_sequentially("ご予算は来月確定", delay=20)
    manager.wait_for_function(MEMO_VIEW, arg="ご予算は来月確定")
    # The page never sent a frame on its socket...
    assert manager.evaluate("window.framesSent") == []
    # ...and one sent anyway (as a tampered page would) is refused, the socket closed; the call goes on.
    manager.evaluate("window.tsunaguSitIn.socket().send(JSON.stringify({type: 'end'}))")
    manager.get_by_role("heading", name="同席中です。この画面から商談には何も送信できません。").wait_for()
    for participant in (host, guest):
        participant.locator("#sit-in-badge").wait_for(state="hidden")
    assert host.get_by_text("お客さまが接続しています。").is_visible()
    guest.get_by_role("button", name="共有メモ", exact=True).click()  # the phone's memo sheet
    guest.locator("#memo-text").click()
    guest.keyboard.press("Control+End")
    guest.locator("#memo-text").press_sequentially("了解", delay=20)
    assert same_memo(host, guest) == "ご予算は来月確定了解"

    # With the org's setting off, the participants are not told.
    async def quiet() -> None:
        async with services(server.app).sessions.begin() as db:
            org = await db.scalar(select(Org).where(Org.slug == "acme"))
            assert org is not None
            org.show_sit_in = False

    server.call(quiet())
    manager.goto(manager.url)
    manager.get_by_text("参加者には表示されていません（組織の設定）。").wait_for()
    manager.wait_for_function(MEMO_VIEW, arg="ご予算は来月確定了解")
    guest.locator("#memo-text").press_sequentially("!", delay=20)
    same_memo(host, guest)  # the guest's edit reached the host after any notice would have
    assert host.locator("#sit-in-badge").is_hidden() and guest.locator("#sit-in-badge").is_hidden()
