"""``make screenshots``, the WebKit guest: the customer's pages in WebKitGTK with an iPhone's Safari user
agent (tests/harness/webkit.py), the host in Chromium, photographed at each step.

WebKitGTK has no WebRTC, so the call runs without video: the shots show what such a customer sees (the
short explanation, the document, the memo) and the host's 「映像を利用できません」.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.live import LiveServer
from tests.harness.webkit import wait_until, webkit_guest
from web.demo import SAMPLE_DOCUMENT

NAME = "iphone-webkit"


def _text(driver: Any, selector: str) -> str:
    return str(
        driver.execute_script("return document.querySelector(arguments[0])?.textContent ?? ''", selector)
    )


def _click(driver: Any, selector: str) -> None:
    wait_until(driver, lambda d: d.find_element("css selector", selector).is_displayed(), what=selector)
    driver.find_element("css selector", selector).click()


def shoot_webkit(
    server: LiveServer,
    browser: Any,
    signed_in_host: Callable[[], Any],
    save_png: Callable[[bytes, str], Path],
) -> None:
    """The guest's steps in WebKit, each saved as ``guest-iphone-webkit-<step>.png``."""
    with webkit_guest() as guest:

        def shot(step: str) -> None:
            save_png(guest.get_screenshot_as_png(), f"guest-{NAME}-{step}")

        guest.get(f"{server.url}/g/demo")
        wait_until(guest, lambda d: d.find_element("id", "start").is_displayed(), what="the guest page")
        time.sleep(1)  # painted (web fonts)
        shot("start")
        _click(guest, "#start")
        wait_until(guest, lambda d: d.find_element("id", "terms").is_displayed(), what="the terms")
        time.sleep(0.3)
        shot("terms")
        _click(guest, "#terms-ok")
        number = wait_until(
            guest,
            lambda d: re.fullmatch(r"\d{4}", _text(d, "#number-digits")) and _text(d, "#number-digits"),
            what="the number",
        )
        shot("number")

        host = signed_in_host()
        host.locator("input.digit").first.click()
        host.keyboard.type(str(number))
        host.get_by_role("button", name="電話商談を開始する").click()
        host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
        wait_until(guest, lambda d: "/rooms/" in d.current_url, within=20, what="the call")
        host.locator("#video-unavailable").wait_for()
        wait_until(guest, lambda d: d.find_element("id", "video-unavailable").is_displayed(), what="notice")
        time.sleep(0.5)
        shot("call")

        host.get_by_role("button", name="資料共有").click()
        host.locator(".doc-item", has_text=SAMPLE_DOCUMENT.removesuffix(".pdf")).click()
        host.wait_for_function(
            "() => { const i = document.querySelector('[data-doc-slide] img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        host.keyboard.press("ArrowRight")
        wait_until(
            guest,
            lambda d: d.execute_script(
                "const i = document.querySelector('[data-doc-slide] img');"
                " return Boolean(i && i.complete && i.naturalWidth > 0"
                " && i.getAttribute('src').endsWith('/2.jpg'));"
            ),
            within=20,
            what="page 2",
        )
        time.sleep(2)  # WebKit paints a new page's image a moment after it has loaded
        shot("document")
        save_png(host.screenshot(animations="disabled", caret="initial"), "host-webkit-guest")

        _click(guest, "#memo-toggle")
        memo = guest.find_element("id", "memo-text")
        wait_until(guest, lambda d: memo.is_displayed(), what="the memo")
        memo.click()
        memo.send_keys("来月から試用したい")
        time.sleep(0.5)
        shot("memo")
        host.context.close()
