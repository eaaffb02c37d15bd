"""資料共有 in real Chromium: the host uploads two documents, opens them in a call, and the guest's phone
follows every page, scroll and close."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from recordings.records import page_views
from tests.calls import PHONE, issue_number, signed_in_host, type_number
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from web.services import services

pytestmark = pytest.mark.browser
PORTRAIT = (595.0, 842.0)


def upload(host: Any, name: str, pdf: bytes) -> int:
    """Upload through the host's own browser session, then wait (bounded) until the pages are rendered."""
    token = host.evaluate("document.body.dataset.csrf")
    base = host.evaluate("location.origin")
    response = host.request.post(
        f"{base}/api/documents?name={name}",
        data=pdf,
        headers={"X-CSRF-Token": token, "Content-Type": "application/pdf"},
    )
    assert response.status == 202, response.text()
    document_id = int(response.json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = host.request.get(f"{base}/api/documents/{document_id}").json()
        if status["status"] == "ready":
            return document_id
        assert status["status"] == "processing", status
        host.wait_for_timeout(200)
    raise AssertionError("the document was not ready within 60 s")


def follows(host: Any, guest: Any, position: str) -> float:
    """Wait (bounded) until the guest's scroll position matches the host's; return it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        here, there = host.evaluate(f"({position})()"), guest.evaluate(f"({position})()")
        if abs(here - there) < 0.02:
            return float(here)
        guest.wait_for_timeout(50)
    raise AssertionError(f"the guest is at {there:.3f}, the host at {here:.3f}")


def shown_page(page: Any) -> str:
    return str(page.locator("[data-doc-slide] img").get_attribute("src"))


@pytest.mark.parametrize("storage_url", ["local", "s3"], indirect=True)
def test_pages_scrolling_and_closing_follow_on_the_guest(
    server: LiveServer, new_context: Callable[..., Any], storage_url: str | None
) -> None:
    """Also with STORAGE_URL=s3://… (a real S3 server): the pages are rendered, stored in the bucket and shown
    to both from there."""
    host = signed_in_host(new_context, server)
    slides = upload(host, "company.pdf", text_pdf(10))
    tall = upload(host, "price-list.pdf", text_pdf(4, PORTRAIT))

    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/")
    type_number(host, issue_number(guest))
    host.wait_for_url(re.compile(r"/rooms/"))
    guest.wait_for_url(host.url)
    host.get_by_text("お客さまが接続しています。").wait_for()

    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{slides}"]').click()
    for page in (host, guest):
        page.locator("#viewer").wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-doc-counter]').textContent === '1 / 10ページ'"
        )
    assert shown_page(guest) == f"/documents/{slides}/pages/1.jpg"
    guest.wait_for_function("() => document.querySelector('[data-doc-slide] img').naturalWidth === 1280")

    def both_on(number: int) -> None:
        src = f"/documents/{slides}/pages/{number}.jpg"
        for page in (host, guest):
            page.wait_for_function(
                f"() => document.querySelector('[data-doc-slide] img').getAttribute('src') === '{src}'"
            )

    host.keyboard.press("ArrowRight")
    both_on(2)
    box = host.locator("[data-doc-slide]").bounding_box()
    host.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)  # the right part: next
    both_on(3)
    host.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)  # the left part: back
    both_on(2)
    host.keyboard.press("ArrowRight")
    host.keyboard.press("ArrowRight")
    both_on(4)

    guest.keyboard.press("ArrowRight")  # the guest may not turn pages unless allowed
    guest.wait_for_timeout(300)
    both_on(4)

    guest.reload()  # a reconnecting guest lands on the current page
    both_on(4)

    host.keyboard.press("Escape")
    for page in (host, guest):
        page.locator("#viewer").wait_for(state="hidden")

    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{tall}"]').click()
    guest.locator("[data-doc-scroll]").wait_for()
    all_loaded = "() => [...document.querySelectorAll('[data-doc-scroll] img')].every(i => i.naturalWidth)"
    guest.wait_for_function(all_loaded)
    host.wait_for_function(all_loaded)
    host.locator("[data-doc-scroll]").focus()
    for _ in range(4):
        host.keyboard.press("ArrowDown")
    relative = (
        "() => { const s = document.querySelector('[data-doc-scroll]');"
        " return s.scrollTop / (s.scrollHeight - s.clientHeight); }"
    )
    guest.wait_for_function(f"({relative})() > 0.1")  # four steps of 30 % of the view, of a 4-page scroll
    host_position = follows(host, guest, relative)
    host.keyboard.press("ArrowUp")
    assert follows(host, guest, relative) < host_position - 0.02  # one step up: 30 % of the view

    host.locator("[data-doc-close]").click()  # ✕
    guest.locator("#viewer").wait_for(state="hidden")

    async def shown() -> list[tuple[int, int]]:
        await services(server.app).hub.flush()
        async with services(server.app).sessions() as db:
            room_id = host.url.rsplit("/", 1)[1]
            return [(view.document_id, view.page) for view in await page_views(db, room_id)]

    views = server.call(shown())
    assert views[:5] == [(slides, 1), (slides, 2), (slides, 3), (slides, 2), (slides, 3)]
    assert (slides, 4) in views and views[-1][0] == tall
    storage = services(server.app).storage
    stored = server.call(storage.keys("documents/"))
    assert len(stored) == (1 + 10 + 10) + (1 + 4 + 4)  # the originals, pages and thumbnails
    on_disk = services(server.app).settings.data_dir / "documents"
    assert on_disk.exists() == (storage_url is None)  # on S3 the pages were never kept on this box's disk
