"""Steps of the browser tests of a call: the host signs in, the guest issues a number, the host types it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.harness.live import LiveServer
from tests.helpers import PASSWORD

PHONE = "Pixel 7"  # Playwright's device profile for the guest


def signed_in_host(new_context: Callable[..., Any], server: LiveServer) -> Any:
    page = new_context().new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the 終了 confirmation
    page.goto(f"{server.url}/login")
    page.get_by_label("メールアドレス").fill("host@acme.example")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"{server.url}/host")
    qr = page.get_by_role("img", name="お客さま用ページのQRコード")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    return page


def issue_number(guest: Any) -> str:
    guest.get_by_role("button", name="接続ナンバーを発行").click()
    dialog = guest.get_by_role("dialog")
    assert dialog.get_by_text("利用規約").is_visible()
    dialog.get_by_role("button", name="同意して進む").click()
    digits = guest.locator("#number-digits")
    digits.wait_for()
    guest.wait_for_function("/^\\d{4}$/.test(document.getElementById('number-digits').textContent)")
    assert "有効期限 残り" in guest.locator("#countdown").inner_text()
    return str(digits.inner_text())


def type_number(host: Any, number: str) -> None:
    host.locator("input.digit").first.click()
    host.keyboard.type(number)  # each digit moves on to the next box by itself
    host.get_by_role("button", name="電話商談を開始する").click()
