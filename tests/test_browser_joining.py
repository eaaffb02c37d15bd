"""Joining in real Chromium: a phone guest and a desktop host, two browser contexts, one live server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from signaling.models import SmsMessage
from tests.calls import PHONE, decoding, issue_number, signed_in_host, type_number
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


def guest_ends(guest: Any) -> None:
    """The guest's 終了: one tap asks first; 終了する confirms."""
    guest.get_by_role("button", name="終了", exact=True).click()
    confirm = guest.get_by_role("dialog")
    confirm.get_by_text("接続を終了しますか？").wait_for()
    confirm.get_by_role("button", name="終了する").click()


def test_guest_end_asks_first_and_may_connect_again_within_the_grace(
    server: LiveServer, new_context: Callable[..., Any], clock: ManualClock
) -> None:
    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/")
    host = signed_in_host(new_context, server)
    type_number(host, issue_number(guest))
    guest.wait_for_url(re.compile(r"/rooms/"))
    host.get_by_text("お客さまが接続しています。").wait_for()

    guest.get_by_role("button", name="終了", exact=True).click()  # a tap by mistake
    confirm = guest.get_by_role("dialog")
    confirm.get_by_text("接続を終了しますか？").wait_for()
    confirm.get_by_role("button", name="キャンセル").click()
    confirm.wait_for(state="hidden")
    guest.get_by_text("担当者と接続しています。").wait_for()
    assert host.get_by_text("お客さまが接続しています。").is_visible()

    guest_ends(guest)
    guest.get_by_role("heading", name="接続を終了しました。").wait_for()
    host.get_by_text("お客さまの接続が終了しました").wait_for()
    assert host.get_by_role("button", name="終了", exact=True).is_visible()  # the host is still in the room
    guest.get_by_text("5分以内であれば、もう一度接続できます。").wait_for()
    guest.get_by_role("button", name="もう一度接続する").click()
    guest.get_by_text("担当者と接続しています。").wait_for()
    host.get_by_text("お客さまが接続しています。").wait_for()
    decoding(host, within=10)  # the customer's camera is back on the host's screen

    guest_ends(guest)
    host.get_by_text("お客さまの接続が終了しました").wait_for()
    clock.advance(services(server.app).settings.rejoin_grace_seconds)  # the server's time: the window closed
    guest.get_by_role("button", name="もう一度接続する").click()
    guest.get_by_role(
        "heading", name="再接続できる時間を過ぎました。接続ナンバーを発行し直してください。"
    ).wait_for()


def test_guest_end_while_the_connection_is_down_is_sent_when_it_is_back(
    server: LiveServer, new_context: Callable[..., Any]
) -> None:
    """The guest's room socket drops (its traffic runs through Playwright, which can cut it); 終了 pressed
    while the page reconnects is kept and reaches the server once the socket is back."""
    guest = new_context(device=PHONE).new_page()
    link = {"down": False}
    sockets: list[Any] = []

    def room_socket(ws: Any) -> None:
        if link["down"]:
            ws.close(code=1011)  # the server cannot be reached: the page keeps trying
            return
        sockets.append((ws, ws.connect_to_server()))

    guest.route_web_socket(re.compile(r"/ws/rooms/"), room_socket)
    guest.goto(f"{server.url}/")
    host = signed_in_host(new_context, server)
    type_number(host, issue_number(guest))
    guest.get_by_text("担当者と接続しています。").wait_for()
    host.get_by_text("お客さまが接続しています。").wait_for()

    link["down"] = True
    _page_side, server_side = sockets[-1]
    server_side.close()  # the connection to the server drops (and the page's side with it)
    guest.get_by_text("接続が切れました。再接続しています…").wait_for()
    host.get_by_text("お客さまの接続が切れました").wait_for()
    guest_ends(guest)
    guest.get_by_text("接続が戻りしだい「終了」を送信します。", exact=False).wait_for()
    assert not host.get_by_text("お客さまの接続が終了しました").is_visible()

    link["down"] = False  # the network is back: the next attempt connects, and 終了 goes out
    guest.get_by_role("heading", name="接続を終了しました。").wait_for(timeout=15_000)
    host.get_by_text("お客さまの接続が終了しました").wait_for()


def test_the_lobby_reconnects_and_still_gets_in(server: LiveServer, new_context: Callable[..., Any]) -> None:
    """The guest's lobby socket is cut before the host types the number; the page reconnects by itself and
    is let in (the server checks on each connect whether the host has redeemed the number meanwhile)."""
    guest = new_context(device=PHONE).new_page()
    lobby = {"down": True, "refused": 0}

    def lobby_socket(ws: Any) -> None:
        if lobby["down"]:
            lobby["refused"] += 1
            ws.close(code=1011)
            return
        ws.connect_to_server()

    guest.route_web_socket(re.compile(r"/ws/lobby"), lobby_socket)
    guest.goto(f"{server.url}/")
    host = signed_in_host(new_context, server)
    number = issue_number(guest)
    type_number(host, number)
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    assert lobby["refused"] >= 1 and "/rooms/" not in guest.url
    lobby["down"] = False
    guest.wait_for_url(host.url, timeout=15_000)
    host.get_by_text("お客さまが接続しています。").wait_for()


def test_sms_link_path(server: LiveServer, new_context: Callable[..., Any]) -> None:
    host = signed_in_host(new_context, server)
    host.get_by_label("お客さまの携帯電話番号").fill("090-1234-5678")
    host.get_by_role("button", name="SMSを送信").click()
    host.wait_for_url(re.compile(r"/rooms/"))
    host.get_by_text("お客さまの接続を待っています…").wait_for()
    # The outbox gateway sends nothing, and the host is told so plainly (not left to wait for nobody).
    host.get_by_text("090-1234-5678 へのSMSは送信されていません").wait_for()

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
    host.locator("#sms-notice").wait_for(state="detached")  # the customer came: the notice has done its job

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
