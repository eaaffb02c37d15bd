"""Steps of the browser tests of a call: the host signs in, the guest issues a number, the host types it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.harness.live import Served
from tests.helpers import PASSWORD

PHONE = "Pixel 7"  # Playwright's device profile for the guest


def signed_in_host(
    new_context: Callable[..., Any], server: Served, base: str | None = None, **options: Any
) -> Any:
    """The host, signed in on its connect screen; ``base``: the address it opens (default: the server's)."""
    base = base or server.url
    page = new_context(**options).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the 終了 confirmation
    page.goto(f"{base}/login")
    page.get_by_label("メールアドレス").fill("host@acme.example")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"{base}/host")
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


# Video (window.tsunaguMedia on the call page)

CAMERA, SCREEN = 0, 1  # m-lines of the one peer connection


def meeting(
    new_context: Callable[..., Any],
    server: Served,
    device: str | None = None,
    guest_script: str = "",
    guest_base: str | None = None,
    host_base: str | None = None,
    camera: bool = True,
    prepare_guest: Callable[[Any], None] | None = None,
    guest_browser: Callable[..., Any] | None = None,
    **options: Any,
) -> tuple[Any, Any]:
    """A host and a guest in one call; the guest on ``device`` and ``guest_base``, with an init script.

    ``camera``: the host's 「カメラを使用する」 before connecting. ``prepare_guest`` gets the guest's page
    before it opens anything; ``guest_browser`` opens the guest's context instead of ``new_context``.
    ``options`` go to both browser contexts (``ignore_https_errors=True`` for a self-signed certificate)."""
    open_guest = guest_browser or new_context
    guest_context = open_guest(device=device, **options) if device else open_guest(**options)
    if guest_script:
        guest_context.add_init_script(guest_script)
    guest = guest_context.new_page()
    if prepare_guest is not None:
        prepare_guest(guest)
    guest.goto(f"{guest_base or server.url}/")
    host = signed_in_host(new_context, server, host_base, **options)
    host.get_by_label("カメラを使用する").set_checked(camera)
    type_number(host, issue_number(guest))
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    guest.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    host.get_by_text("お客さまが接続しています。").wait_for()
    return host, guest


def frames(page: Any, slot: int = CAMERA) -> int:
    return int(page.evaluate("slot => window.tsunaguMedia.framesDecoded(slot)", slot))


def decoding(page: Any, slot: int = CAMERA, within: float = 5.0, more: int = 10) -> float:
    """Wait (bounded) until ``more`` further frames are decoded on ``slot``; returns the seconds it took."""
    start = time.monotonic()
    first = frames(page, slot)
    while frames(page, slot) < first + more:
        if time.monotonic() - start > within:
            state = page.evaluate(
                "[window.tsunaguMedia.link.pc?.connectionState,"
                " document.getElementById('channel-status').textContent]"
            )
            raise AssertionError(f"slot {slot}: {frames(page, slot) - first} frames in {within} s; {state}")
        page.wait_for_timeout(100)
    return time.monotonic() - start


def stopped(page: Any, slot: int = CAMERA, within: float = 8.0, still: float = 1.5) -> int:
    """Wait (bounded) until no frame is decoded on ``slot`` for ``still`` seconds; returns the count then.

    Frames already on their way when the sender stopped still arrive for a moment, hence the quiet spell."""
    start = time.monotonic()
    last, since = frames(page, slot), time.monotonic()
    while time.monotonic() - since < still:
        if time.monotonic() - start > within:
            raise AssertionError(
                f"slot {slot}: frames still arriving after {within} s ({frames(page, slot)})"
            )
        page.wait_for_timeout(250)
        now = frames(page, slot)
        if now != last:
            last, since = now, time.monotonic()
    return last
