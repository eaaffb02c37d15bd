"""Video optional in Chromium, both sides (issue 21): the guest's peer connection cannot connect.

Every ICE candidate the guest offers and is answered points at a port where nothing listens (its room
socket runs through Playwright, which rewrites them). Within VIDEO_CONNECT_SECONDS the host is told
「映像を利用できません」 (reason: network), the guest gets a short explanation, and documents and memo
work all along; once the cause is gone, the guest's 更新 brings the video. The WebKit counterpart, a
browser without WebRTC at all, is tests/test_browser_webkit.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.calls import decoding, meeting
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from tests.test_browser_documents import upload
from web.settings import Settings

pytestmark = pytest.mark.browser

CONNECT_SECONDS = 3.0
NOWHERE = 9  # the discard port: nothing listens there on loopback, so no check ever gets an answer
CANDIDATE = re.compile(r"(a=candidate:\S+ \d+ \S+ \d+ \S+ )(\d+)( typ )")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, video_connect_seconds=CONNECT_SECONDS)


def unreachable(frame: str | bytes) -> str | bytes:
    """A media offer or answer whose candidates all point at :data:`NOWHERE`; any other frame as it is."""
    if isinstance(frame, bytes):
        return frame
    message = json.loads(frame)
    if message.get("type") not in ("media.offer", "media.answer"):
        return frame
    message["sdp"] = CANDIDATE.sub(rf"\g<1>{NOWHERE}\g<3>", message["sdp"])
    return json.dumps(message)


def through_playwright(cause: dict[str, bool]) -> Callable[[Any], None]:
    """Prepares a guest page whose room socket runs through Playwright, which makes every media offer and
    answer unreachable while ``cause["on"]``."""

    def room_socket(ws: Any) -> None:
        upstream = ws.connect_to_server()
        ws.on_message(lambda frame: upstream.send(unreachable(frame) if cause["on"] else frame))
        upstream.on_message(lambda frame: ws.send(unreachable(frame) if cause["on"] else frame))

    return lambda guest: guest.route_web_socket(re.compile(r"/ws/rooms/"), room_socket)


def meeting_without_video(
    server: LiveServer, new_context: Callable[..., Any], cause: dict[str, bool]
) -> tuple[Any, Any, Any]:
    """Host and guest in a call whose guest cannot connect while ``cause["on"]``; the host's notice, shown
    within the bound (plus a page's slack on a loaded box) with the reason "network"."""
    host, guest = meeting(new_context, server, prepare_guest=through_playwright(cause))
    notice = host.locator("#video-unavailable")
    notice.wait_for(timeout=(CONNECT_SECONDS + 7) * 1000)
    assert notice.get_attribute("data-reason") == "network"
    return host, guest, notice


def test_a_peer_connection_that_cannot_connect_leaves_the_call_without_video_until_reload(
    server: LiveServer, new_context: Callable[..., Any]
) -> None:
    cause = {"on": True}
    host, guest, notice = meeting_without_video(server, new_context, cause)
    assert "お客さまの環境では映像を利用できません（資料・メモはご利用いただけます）" in notice.inner_text()
    assert "お客さまのネットワークでは映像を接続できませんでした" in notice.inner_text()
    # Not before the guest's connection had its chance: its offer went out, and it is not connected.
    assert guest.evaluate("window.tsunaguMedia.link.offers") >= 1
    explanation = guest.locator("#video-unavailable")
    explanation.wait_for()
    assert "いまのネットワークでは映像を接続できません" in explanation.inner_text()
    assert guest.evaluate("window.tsunaguMedia.link.pc.connectionState") != "connected"
    assert guest.locator("#channel-status").inner_text() == ""

    # Everything else goes on: a document opened by the host, a memo line from the guest.
    slides = upload(host, "提案書.pdf", text_pdf(2))
    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{slides}"]').click()
    guest.wait_for_function(
        "() => { const i = document.querySelector('[data-doc-slide] img');"
        " return i && !i.closest('[hidden]') && i.complete && i.naturalWidth > 0; }"
    )
    if not guest.locator("#memo-text").is_visible():
        guest.locator("#memo-toggle").click()  # 共有メモ
    guest.locator("#memo-text").click()
    guest.keyboard.type("映像なしでも大丈夫です🙆")
    host.wait_for_function(
        "text => document.getElementById('memo-text').value.includes(text)", arg="映像なしでも大丈夫です🙆"
    )
    assert notice.is_visible()  # still no video: the connection is retried, and still cannot connect

    # The cause is gone; the guest presses 更新: the video starts, and both notices go.
    cause["on"] = False
    guest.get_by_role("button", name="更新").click()
    notice.wait_for(state="hidden", timeout=15_000)
    explanation.wait_for(state="hidden")
    assert guest.evaluate("window.tsunaguMedia.link.pc.connectionState") == "connected"
    decoding(host, within=15)  # the guest's camera, on the host's page


def test_video_is_tried_again_by_itself_when_the_network_changes(
    server: LiveServer, new_context: Callable[..., Any]
) -> None:
    cause = {"on": True}
    host, guest, notice = meeting_without_video(server, new_context, cause)
    # The customer's phone moves to another network: the browser says it is online again. Nobody presses
    # anything; the page tries again by itself, and this time it connects.
    cause["on"] = False
    guest.evaluate("window.dispatchEvent(new Event('online'))")
    notice.wait_for(state="hidden", timeout=15_000)
    assert guest.evaluate("window.tsunaguMedia.availability.retries") >= 1
    decoding(host, within=15)
