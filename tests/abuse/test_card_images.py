"""Finding 1: card images were decoded in the server with a 40-megapixel budget; six 155 KB PNGs of
6,320 × 6,320 at once took the server to 4.2 GB. Measured on the real ``tsunagu serve`` process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.abuse.clients import close_all, together
from tests.abuse.images import photo, png_bomb
from tests.harness.serve import Serve
from tests.helpers import PASSWORD
from tests.joining import Browser

MIB = 1024 * 1024


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    # Six uploads at once from one signed-in host: its upload slots are opened to six for this test.
    server = Serve(tmp_path, UPLOADS_PER_USER="6")
    server.add_acme_and_its_host(PASSWORD)
    server.start()
    yield server
    server.stop_if_running()


@pytest.fixture
async def hosts(served: Serve) -> AsyncIterator[list[Browser]]:
    """Six browsers of one signed-in host (any signed-in user may upload card images)."""
    first = Browser(served.url)
    first.http.timeout = httpx.Timeout(60)
    await first.sign_in("host@acme.example")
    browsers = [first]
    for _ in range(5):  # the same session cookie in five more clients: six uploads at once
        browser = Browser(served.url)
        browser.http.timeout = httpx.Timeout(60)
        browser.http.cookies = httpx.Cookies(first.http.cookies)
        browser.csrf = first.csrf
        browsers.append(browser)
    yield browsers
    await close_all(browsers)


async def upload(browser: Browser, body: bytes) -> httpx.Response:
    return await browser.http.post(
        "/api/card/images?slot=photo",
        content=body,
        headers={"X-CSRF-Token": browser.csrf, "Accept": "application/json", "Content-Type": "image/png"},
    )


@pytest.mark.timeout(300)  # a real `tsunagu serve` is migrated, seeded and started first
async def test_six_image_bombs_at_once_cost_the_server_under_64_mb(
    served: Serve, hosts: list[Browser]
) -> None:
    warm = await upload(hosts[0], photo())  # starts what a first upload starts (the worker machinery)
    assert warm.status_code == 201, warm.text
    peak_before, resident_before = served.memory("VmHWM"), served.memory("VmRSS")

    bomb = png_bomb(6320)
    assert len(bomb) < 160 * 1024
    replies = await together(hosts, lambda host: upload(host, bomb))

    assert [reply.status_code for reply in replies] == [400] * 6, [r.text for r in replies]
    assert {reply.json()["error"]["code"] for reply in replies} == {"image_too_many_pixels"}
    assert "16メガピクセルまで" in replies[0].json()["error"]["message"]
    growth = served.memory("VmHWM") - peak_before
    assert growth < 64 * MIB, f"the server's peak RSS grew by {growth / MIB:.0f} MiB"
    assert served.memory("VmRSS") - resident_before < 64 * MIB

    # A 12-megapixel phone photo (4,032 × 3,024) still goes through, decoded in the worker as well.
    phone = await upload(hosts[1], photo((4032, 3024)))
    assert phone.status_code == 201, phone.text
    assert served.memory("VmHWM") - peak_before < 64 * MIB
