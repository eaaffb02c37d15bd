"""``make screenshots``: hold a real call and photograph it, for README.md (docs/screenshots/).

A fresh server (the tests' harness: the app on uvicorn, a temporary SQLite database) with the demo org that
``make run`` seeds; Debian's Chromium with fake cameras, a host at 1366×768 and a guest on a phone profile.
The host connects by number, opens the sample document, points at it and writes in the memo; the guest
follows. Each shot is quantised to 256 colours to keep the repository small.

Run it inside a network namespace with only loopback, as the tests are (``make screenshots`` does). To add a
guest browser (WebKit later), add an entry to :data:`GUESTS`: a name and a function opening its page.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from store.migrate import upgrade
from tests.harness.browser import CHROMIUM, launch_args
from tests.harness.live import LiveServer
from web.app import create_app
from web.demo import SAMPLE_DOCUMENT, seed_demo_from
from web.logs import configure_logging
from web.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
HOST_VIEWPORT = {"width": 1366, "height": 768}
HOST_EMAIL = "host1@demo.example"


def chromium_phone(playwright: Any, browser: Any, device: str = "Pixel 7") -> Any:
    """A Chromium page with a phone's profile, one CSS pixel per image pixel (a small file)."""
    profile = dict(playwright.devices[device])
    profile.pop("default_browser_type", None)
    profile["device_scale_factor"] = 1
    context = browser.new_context(**{"locale": "ja-JP", **profile})
    context.set_default_timeout(20_000)
    return context.new_page()


# Guest browsers to photograph: name -> a function (playwright, chromium) -> page.
GUESTS: dict[str, Callable[[Any, Any], Any]] = {"pixel7": chromium_phone}


def save(page: Any, name: str) -> Path:
    """A screenshot of the page as it is, quantised to 256 colours (PNG, optimised)."""
    path = OUT / f"{name}.png"
    raw = page.screenshot(animations="disabled", caret="initial")
    import io

    with Image.open(io.BytesIO(raw)) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB", flush=True)
    return path


def decoding(page: Any, within: float = 20.0) -> None:
    """Wait (bounded) until the other side's camera is on screen."""
    page.wait_for_function(
        "() => { const v = document.getElementById('video-a'); return v.videoWidth > 0 && !v.paused; }",
        timeout=within * 1000,
    )


def seed(settings: Settings) -> dict[str, str]:
    return asyncio.run(seed_demo_from(settings, {}))


def call(
    playwright: Any, browser: Any, server: LiveServer, password: str, open_guest: Callable[..., Any]
) -> tuple[Any, Any]:
    guest = open_guest(playwright, browser)
    guest.goto(f"{server.url}/g/demo")
    host_context = browser.new_context(locale="ja-JP", viewport=HOST_VIEWPORT)
    host_context.set_default_timeout(20_000)
    host = host_context.new_page()
    host.on("dialog", lambda dialog: dialog.accept())
    host.goto(f"{server.url}/login")
    host.get_by_label("メールアドレス").fill(HOST_EMAIL)
    host.get_by_label("パスワード").fill(password)
    host.get_by_role("button", name="ログイン").click()
    host.wait_for_url(f"{server.url}/host")

    guest.get_by_role("button", name="接続ナンバーを発行").click()
    guest.get_by_role("dialog").get_by_role("button", name="同意して進む").click()
    guest.wait_for_function("() => /^\\d{4}$/.test(document.getElementById('number-digits').textContent)")
    number = guest.locator("#number-digits").inner_text()
    host.locator("input.digit").first.click()
    host.keyboard.type(number)
    host.get_by_role("button", name="電話商談を開始する").click()
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    guest.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    host.get_by_text("お客さまが接続しています。").wait_for()
    decoding(host)
    decoding(guest)
    return host, guest


def shoot(server: LiveServer, password: str, guests: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=launch_args())
        try:
            for name in guests:
                host, guest = call(playwright, browser, server, password, GUESTS[name])
                # The memo starts with the org's default template; the host adds a line.
                host.locator("#memo-text").click()
                host.keyboard.press("Control+End")
                host.keyboard.type("来月から 5 名で試用したい")
                host.mouse.move(10, 10)
                time.sleep(0.5)
                save(host, "host-camera")
                save(guest, f"guest-{name}-camera")

                host.get_by_role("button", name="資料共有").click()
                host.locator(".doc-item", has_text=SAMPLE_DOCUMENT.removesuffix(".pdf")).click()
                for page in (host, guest):
                    page.wait_for_function(
                        "() => { const i = document.querySelector('[data-doc-slide] img');"
                        " return i && i.complete && i.naturalWidth > 0; }"
                    )
                host.keyboard.press("ArrowRight")
                host.keyboard.press("ArrowRight")
                for page in (host, guest):
                    page.wait_for_function(
                        "() => { const i = document.querySelector('[data-doc-slide] img');"
                        " return i.getAttribute('src').endsWith('/3.jpg') && i.complete"
                        " && i.naturalWidth > 0; }"
                    )
                box = host.locator("[data-doc-slide] img").bounding_box()
                host.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.42, steps=4)
                guest.locator("[data-doc-slide] [data-pointer]").wait_for()
                time.sleep(0.5)
                save(host, "host-document")
                save(guest, f"guest-{name}-document")

                guest.get_by_role("button", name="共有メモ").click()
                guest.locator("#memo-text").wait_for()
                time.sleep(0.3)
                save(guest, f"guest-{name}-memo")
                host.context.close()
                guest.context.close()
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--guest", action="append", choices=sorted(GUESTS), help="guest browsers (default: all)"
    )
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="tsunagu-shots-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'shots.db'}",
            secret_key=secrets.token_hex(32),
            ice_host_addresses=("127.0.0.1",),
        )
        upgrade(settings.database_url)
        password = seed(settings)[HOST_EMAIL]
        server = LiveServer(create_app(settings))
        server.start()
        try:
            shoot(server, password, args.guest or sorted(GUESTS))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
