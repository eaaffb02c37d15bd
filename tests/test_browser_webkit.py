"""The customer in WebKit (Safari's engine, an iPhone's user agent), the host in Chromium (issue 21).

Debian's WebKitGTK has no WebRTC, so this is also the "video optional" test: the guest page, the terms, the
number and the SMS join link, then a call without video where the document the host opens is shown and
follows page turns, the memo syncs both ways (Japanese and emoji), a file arrives and is saved, the card is
saved, and the host is told 「お客さまの環境では映像を利用できません」 with the reason. One WebKit session for
the module (it is slow to start); the host is the shared Chromium; both talk to the live server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from signaling.models import SmsMessage
from tests.calls import signed_in_host, type_number
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from tests.harness.webkit import IPHONE_UA, wait_until, webkit_guest, webkit_missing
from tests.test_browser_documents import upload
from web.services import services

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(webkit_missing() is not None, reason=str(webkit_missing())),
]

NO_VIDEO = "お客さまの環境では映像を利用できません（資料・メモはご利用いただけます）"
CALL_URL = re.compile(r"/rooms/[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def webkit() -> Iterator[Any]:
    with webkit_guest() as driver:
        yield driver


@pytest.fixture
def guest(webkit: Any) -> Any:
    """The module's WebKit session, as a new customer: no cookies or storage from the last test."""
    webkit.get("about:blank")
    webkit.delete_all_cookies()
    return webkit


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def click(driver: Any, selector: str) -> None:
    """Click the element once it is shown (WebDriver's own click: real pointer events)."""
    element = wait_until(
        driver,
        lambda d: next((e for e in d.find_elements("css selector", selector) if e.is_displayed()), None),
        what=f"{selector} shown",
    )
    element.click()


def text_of(driver: Any, selector: str) -> str:
    return str(js(driver, "return document.querySelector(arguments[0])?.textContent ?? ''", selector))


def shown(driver: Any, selector: str) -> bool:
    return bool(
        js(
            driver,
            "const n = document.querySelector(arguments[0]);"
            " return Boolean(n && !n.closest('[hidden]') && n.getClientRects().length);",
            selector,
        )
    )


def slide_shown(driver: Any, page: int) -> bool:
    """Page ``page`` of the open document is on the guest's screen, loaded."""
    return bool(
        js(
            driver,
            "const i = document.querySelector('[data-doc-slide] img');"
            " return Boolean(i && !i.closest('[hidden]') && i.complete && i.naturalWidth > 0"
            " && i.getAttribute('src').endsWith(`/${arguments[0]}.jpg`));",
            page,
        )
    )


def guest_gets_a_number(guest: Any, server: LiveServer) -> str:
    guest.get(f"{server.url}/")
    click(guest, "#start")  # 接続ナンバーを発行
    wait_until(guest, lambda d: shown(d, "#terms"), what="the terms")
    assert "利用規約" in text_of(guest, "#terms")
    click(guest, "#terms-ok")  # 同意して進む
    return str(
        wait_until(
            guest,
            lambda d: re.fullmatch(r"\d{4}", text_of(d, "#number-digits")) and text_of(d, "#number-digits"),
            what="a 4-digit number",
        )
    )


def in_call(guest: Any, host: Any) -> None:
    host.wait_for_url(CALL_URL)
    wait_until(guest, lambda d: CALL_URL.search(d.current_url), within=15, what="the guest in the call")
    host.get_by_text("お客さまが接続しています。").wait_for()
    wait_until(guest, lambda d: text_of(d, "#peer-status") == "担当者と接続しています。", what="welcome")


def no_video_on_both_sides(guest: Any, host: Any) -> None:
    """The host is told why; the guest gets a short explanation, and no error."""
    notice = host.locator("#video-unavailable")
    notice.wait_for()
    assert notice.get_attribute("data-reason") == "unsupported"
    assert NO_VIDEO in notice.inner_text()
    assert "お客さまのブラウザが映像に対応していません" in notice.inner_text()
    wait_until(guest, lambda d: shown(d, "#video-unavailable"), what="the guest's explanation")
    assert "このブラウザでは映像を表示できません" in text_of(guest, "#video-unavailable-text")
    assert not shown(guest, "#video-retry")  # nothing to retry: this browser has no WebRTC at all
    assert text_of(guest, "#overlay-a") == "映像は利用できません"  # not a wait for video that never comes
    assert text_of(guest, "#channel-status") == ""


def test_webkit_guest_joins_by_number_and_has_everything_but_video(
    server: LiveServer, new_context: Callable[..., Any], guest: Any, tmp_path: Path
) -> None:
    host = signed_in_host(new_context, server)
    host.get_by_role("link", name="名刺").click()
    for label, value in {"姓": "山田", "名": "太郎", "会社名": "株式会社つなぐ"}.items():
        host.get_by_label(label, exact=True).fill(value)
    host.get_by_role("button", name="保存").click()
    host.get_by_text("名刺を保存しました。").wait_for()
    slides = upload(host, "会社案内.pdf", text_pdf(3))
    host.goto(f"{server.url}/host")

    # The guest's page in WebKit, as an iPhone's Safari: no WebRTC here.
    number = guest_gets_a_number(guest, server)
    assert js(guest, "return [navigator.userAgent, typeof RTCPeerConnection]") == [IPHONE_UA, "undefined"]
    type_number(host, number)
    in_call(guest, host)
    no_video_on_both_sides(guest, host)

    # 資料共有: shown on the iPhone, and it follows the host's page turns.
    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{slides}"]').click()
    for page in (1, 2, 3):
        if page > 1:
            host.keyboard.press("ArrowRight")
        wait_until(guest, lambda d: slide_shown(d, page), what=f"page {page} on the guest")  # noqa: B023

    # 共有メモ both ways, Japanese and emoji.
    click(guest, "#memo-toggle")
    area = wait_until(guest, lambda d: d.find_element("id", "memo-text"), what="the memo")
    wait_until(guest, lambda d: area.is_displayed(), what="the memo sheet open")
    area.click()
    area.send_keys("来月から試用したい")
    # WebKitWebDriver's keys stop at the BMP: the emoji goes in as an input method commits it (insertText).
    js(guest, "document.getElementById('memo-text').focus(); document.execCommand('insertText', false, '👍')")
    host.wait_for_function(
        "text => document.getElementById('memo-text').value.includes(text)", arg="来月から試用したい👍"
    )
    host.locator("#memo-text").click()
    host.keyboard.press("Control+End")
    host.keyboard.type("\n見積書を送ります😀")
    wait_until(
        guest,
        lambda d: "見積書を送ります😀" in d.find_element("id", "memo-text").get_attribute("value"),
        what="the host's line in the guest's memo",
    )
    assert "来月から試用したい👍" in guest.find_element("id", "memo-text").get_attribute("value")

    # ファイル送信: the host sends, the iPhone is asked and saves it; the bytes are the host's.
    content = "お見積り 2026\n".encode() * 2000
    sent = tmp_path / "お見積り.txt"
    sent.write_bytes(content)
    host.get_by_role("button", name="ファイル送信").click()
    host.locator("#files-input").set_input_files(sent)
    host.locator("#files-send-button").click()
    wait_until(guest, lambda d: shown(d, "#file-prompt"), within=15, what="the file prompt")
    assert "お見積り.txt" in text_of(guest, "#file-prompt-title")
    click(guest, "#file-prompt-save")
    wait_until(
        guest,
        lambda d: "ダウンロードしました" in text_of(d, "#files-incoming .file-state"),
        within=15,
        what="the file saved",
    )
    digest = guest.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " const link = document.querySelector('#files-incoming a[download]');"
        " fetch(link.href).then((r) => r.arrayBuffer()).then((b) => crypto.subtle.digest('SHA-256', b))"
        " .then((d) => done([...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('')));"
    )
    assert digest == hashlib.sha256(content).hexdigest()

    # 名刺: opened on the iPhone and saved to its contacts (the vCard it downloads).
    click(guest, "#open-card")
    wait_until(guest, lambda d: "山田 太郎" in text_of(d, "#card-dialog"), what="the card")
    vcard = guest.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " fetch(document.querySelector('[data-card-vcf]').href).then((r) => r.text()).then(done);"
    )
    assert "FN:山田 太郎" in vcard and "ORG:株式会社つなぐ" in vcard

    # Still no error anywhere on the guest, and the host's notice holds; then the guest's 終了, confirmed.
    assert text_of(guest, "#channel-status") == ""
    assert host.locator("#video-unavailable").is_visible()
    js(guest, "document.querySelector('dialog[open]')?.close()")
    click(guest, "#end-call")
    click(guest, "#end-confirm-yes")
    host.get_by_text("お客さまの接続が終了しました").wait_for()


def test_webkit_guest_joins_by_the_sms_link(
    server: LiveServer, new_context: Callable[..., Any], guest: Any
) -> None:
    host = signed_in_host(new_context, server)
    host.get_by_label("お客さまの携帯電話番号").fill("090-1234-5678")
    host.get_by_role("button", name="SMSを送信").click()
    host.wait_for_url(CALL_URL)

    async def outbox() -> list[SmsMessage]:
        async with services(server.app).sessions() as db:
            return list(await db.scalars(select(SmsMessage)))

    (sms,) = server.call(outbox())
    link = re.search(r"http://\S+/j/\S+", sms.body).group(0)  # type: ignore[union-attr]
    guest.get(link)
    click(guest, "#start")  # 接続する
    wait_until(guest, lambda d: shown(d, "#terms"), what="the terms")
    click(guest, "#terms-ok")
    in_call(guest, host)
    no_video_on_both_sides(guest, host)
    # The host ends the meeting for both: the iPhone says so.
    host.get_by_role("button", name="終了").click()
    wait_until(guest, lambda d: "商談は終了しました。" in text_of(d, "#ended-title"), what="the end")
