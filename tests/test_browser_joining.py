"""Joining in real Chromium: a phone guest and a desktop host, two browser contexts, one live server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from signaling.models import SmsMessage
from tests.calls import PHONE, issue_number, signed_in_host, type_number
from tests.harness.live import LiveServer
from web.services import services

pytestmark = pytest.mark.browser


def test_number_path_then_host_ends_for_both(server: LiveServer, new_context: Callable[..., Any]) -> None:
    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/")
    host = signed_in_host(new_context, server)
    number = issue_number(guest)

    type_number(host, number)
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    guest.wait_for_url(host.url)  # the guest page moves into the call by itself
    assert re.fullmatch(r"\d{7}", host.locator("#connect-id").inner_text())
    assert guest.locator("#connected-to").inner_text() == "接続先: ACME host"
    host.get_by_text("お客さまが接続しています。").wait_for()
    guest.get_by_text("担当者と接続しています。").wait_for()

    host.get_by_role("button", name="終了").click()
    host.get_by_role("heading", name="商談を終了しました。").wait_for()
    guest.get_by_role("heading", name="商談は終了しました。").wait_for()


def test_guest_end_leaves_the_host_with_a_notice(server: LiveServer, new_context: Callable[..., Any]) -> None:
    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/")
    host = signed_in_host(new_context, server)
    type_number(host, issue_number(guest))
    guest.wait_for_url(re.compile(r"/rooms/"))
    host.get_by_text("お客さまが接続しています。").wait_for()

    guest.get_by_role("button", name="終了").click()
    guest.get_by_role("heading", name="接続を終了しました。").wait_for()
    host.get_by_text("お客さまの接続が終了しました").wait_for()
    assert host.get_by_role("button", name="終了").is_visible()  # the host is still in the room


def test_sms_link_path(server: LiveServer, new_context: Callable[..., Any]) -> None:
    host = signed_in_host(new_context, server)
    host.get_by_label("お客さまの携帯電話番号").fill("090-1234-5678")
    host.get_by_role("button", name="SMSを送信").click()
    host.wait_for_url(re.compile(r"/rooms/"))
    host.get_by_text("お客さまの接続を待っています…").wait_for()

    async def outbox() -> list[SmsMessage]:
        async with services(server.app).sessions() as db:
            return list(await db.scalars(select(SmsMessage)))

    (sms,) = server.call(outbox())
    assert sms.to == "+819012345678" and sms.status == "stored"
    link = re.search(r"http://\S+/j/\S+", sms.body).group(0)  # type: ignore[union-attr]

    guest = new_context(device=PHONE).new_page()
    guest.goto(link)
    guest.get_by_role("button", name="接続する").click()
    guest.get_by_role("dialog").get_by_role("button", name="同意して進む").click()
    guest.wait_for_url(host.url)
    host.get_by_text("お客さまが接続しています。").wait_for()

    host.get_by_role("button", name="終了").click()
    guest.get_by_role("heading", name="商談は終了しました。").wait_for()
    # The link was single-use.
    again = new_context(device=PHONE).new_page()
    again.goto(link)
    assert "すでに使用されています" in again.locator("main").inner_text()


def test_each_number_error_is_shown_in_the_page(
    server: LiveServer, new_context: Callable[..., Any], clock: ManualClock
) -> None:
    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/")
    host = signed_in_host(new_context, server)
    alert = host.get_by_role("alert")

    number = issue_number(guest)
    wrong = "0000" if number != "0000" else "1111"
    type_number(host, wrong)
    assert "この接続ナンバーは存在しません" in alert.inner_text()

    clock.advance(120)
    type_number(host, number)
    assert "有効期限が切れています" in alert.inner_text()

    guest.get_by_role("button", name="接続ナンバーを再発行").click()
    guest.wait_for_function(f"document.getElementById('number-digits').textContent !== '{number}'")
    fresh = guest.locator("#number-digits").inner_text()
    # The first wrong number is 120 s old by now, outside the one-minute window: expired + 4 more = 5.
    for _ in range(4):
        type_number(host, wrong)
    type_number(host, fresh)
    assert "ロック" in alert.inner_text() and "秒お待ちください" in alert.inner_text()


def test_guest_countdown_expires_and_reissues(server: LiveServer, new_context: Callable[..., Any]) -> None:
    guest = new_context(device=PHONE).new_page()
    guest.clock.install()
    guest.goto(f"{server.url}/")
    first = issue_number(guest)
    guest.clock.fast_forward(121_000)
    guest.get_by_text("この接続ナンバーは有効期限が切れました。再発行してください。").wait_for()
    guest.get_by_role("button", name="接続ナンバーを再発行").click()
    guest.wait_for_function(f"document.getElementById('number-digits').textContent !== '{first}'")
    assert "有効期限 残り" in guest.locator("#countdown").inner_text()


def test_pasting_the_number_fills_every_box(server: LiveServer, new_context: Callable[..., Any]) -> None:
    host = signed_in_host(new_context, server)
    host.locator("input.digit").first.focus()
    host.evaluate(
        """() => {
          const data = new DataTransfer();
          data.setData('text', ' 12-34 ');
          const paste = {clipboardData: data, bubbles: true, cancelable: true};
          document.activeElement.dispatchEvent(new ClipboardEvent('paste', paste));
        }"""
    )
    assert [box.input_value() for box in host.locator("input.digit").all()] == ["1", "2", "3", "4"]


def test_in_app_browsers_are_told_to_open_a_real_browser(
    server: LiveServer, new_context: Callable[..., Any]
) -> None:
    line = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "Mobile/15E148 Safari Line/13.1.0"
    )
    guest = new_context(device=PHONE, user_agent=line).new_page()
    guest.goto(f"{server.url}/")
    guest.get_by_text("LINEアプリ内のブラウザで開いています").wait_for()
    assert guest.locator("#page-url").input_value() == f"{server.url}/"
    assert not guest.locator("#unsupported").is_visible()  # the script ran, so the fallback text is hidden
