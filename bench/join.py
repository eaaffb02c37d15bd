"""Joining a call, to the first decoded video frame on both sides, in Debian's Chromium over loopback.

Two ways in, ``--joins`` times each (10 by default), each with a fresh guest browser (a Pixel 7 profile, fake
camera) and one signed-in host (1366×768, fake camera):

- ``link``: from the guest's tap on the SMS 接続用URL (the navigation start of the ``/j/…`` page) to the
  moment both pages have decoded a frame of the other side's camera. The host has sent the SMS and waits in
  the room;
  the guest's two taps on the way (接続する, 同意して進む) are made as soon as the buttons are there.
- ``number``: from the host's click on 電話商談を開始する (the guest has issued its number and waits in the
  lobby) to the same moment.

"Decoded" is the browser's own count (``framesDecoded`` of the peer connection's inbound video, polled every
10 ms by an init script), so the figure includes signalling, ICE and DTLS on loopback, the server's relay and
the first keyframe. The baseline, in the same run and the same browser: a fresh phone page loading the guest
page and showing its own camera (``getUserMedia`` to the first frame of a <video>), the floor of any join.

Lines: ``join_first_frame_p50_ms`` / ``join_first_frame_p95_ms`` (both ways together), the same per way, the
baseline's p50, where the time went (``join_step_<step>_p50_ms``, on the side whose frame came last: to the
call page's DOMContentLoaded, the room channel's welcome, the media offer, its answer, the connection, the
first frame) and ``join_to_baseline_ratio`` (p50 ÷ baseline p50). Target: p50 < 1000 ms
(``targets_met``). Run inside a network namespace with only loopback, as the tests are:
``unshare --net -- sh -c 'ip link set lo up && exec .venv/bin/python -m bench.join'``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from signaling.models import SmsMessage
from store.migrate import upgrade
from store.models import Role
from tests.harness.browser import CHROMIUM, launch_args, waits_pass_the_policy
from tests.harness.live import LiveServer
from tests.helpers import PASSWORD, seed_org
from web.app import create_app
from web.logs import configure_logging
from web.services import services
from web.settings import Settings

HOST_EMAIL = "host@bench.example"
PHONE = "Pixel 7"
TARGET_P50_MS = 1000.0

# In every page, before its own scripts: keep the peer connections and note (page clock, ms since the epoch)
# the first moment one of them has decoded a video frame, and the steps on the way there (joinMarks: the
# page's DOMContentLoaded, the room channel's welcome, the media offer sent, its answer, the connection up).
FIRST_FRAME = """(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.joinMarks = {};
  const mark = (name) => { if (!(name in window.joinMarks)) window.joinMarks[name] = now(); };
  document.addEventListener("DOMContentLoaded", () => mark("ready"));
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string" && event.data.includes('"welcome"')) mark("welcome");
        if (typeof event.data === "string" && event.data.includes('"media.answer"')) mark("answer");
      });
    }
    send(data) {
      if (typeof data === "string" && data.includes('"media.offer"')) mark("offer");
      return super.send(data);
    }
  };
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  const connections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      connections.push(this);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected") mark("connected");
      });
    }
  };
  window.firstFrameAt = null;
  const poll = async () => {
    for (const connection of connections) {
      const stats = await connection.getStats();
      for (const entry of stats.values()) {
        if (entry.type === "inbound-rtp" && entry.kind === "video" && entry.framesDecoded > 0) {
          window.firstFrameAt = now();
          mark("frame");
          return;
        }
      }
    }
    setTimeout(poll, 10);
  };
  setTimeout(poll, 10);
})();"""

# Where a join's time goes, on the side whose first frame came last: from the tap or click to the call page's
# DOMContentLoaded, then to the room channel's welcome, the offer sent, its answer, the connection up, the
# first decoded frame (each step from the one before; the first offer is made while the channel connects, so
# "offer" is what gathering still needed after the welcome).
PHASES = ("ready", "welcome", "offer", "answer", "connected", "frame")


def phases(start: float, marks: dict[str, float]) -> dict[str, float]:
    """Milliseconds spent in each step (0 when a step was done before the previous one)."""
    spent, before = {}, start
    for name in PHASES:
        at = marks.get(name, before)
        spent[name] = max(0.0, at - before)
        before = max(before, at)
    return spent


# The host's click on 電話商談を開始する, kept across the navigation to the room (sessionStorage).
NOTE_START = """() => document.addEventListener("click", (event) => {
  if (event.target.closest("button")?.textContent.includes("電話商談を開始する")) {
    sessionStorage.setItem("startAt", String(performance.timeOrigin + performance.now()));
  }
}, { capture: true })"""

# The baseline: this page's own camera to its first frame, from the page's navigation start.
OWN_CAMERA = """async () => {
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  document.body.append(video);
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
  await video.play();
  await new Promise((resolve) => video.requestVideoFrameCallback(resolve));
  return performance.now();
}"""


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


class Bench:
    def __init__(self, playwright: Any, browser: Any, server: LiveServer, timeout_s: float) -> None:
        self.playwright, self.browser, self.server = playwright, browser, server
        self.timeout_ms = timeout_s * 1000
        context = browser.new_context(locale="ja-JP", viewport={"width": 1366, "height": 768})
        context.set_default_timeout(self.timeout_ms)
        context.add_init_script(FIRST_FRAME)
        self.host = context.new_page()
        self.host.on("dialog", lambda dialog: dialog.accept())  # the host's 終了 confirmation
        self.host.goto(f"{server.url}/login")
        self.host.get_by_label("メールアドレス").fill(HOST_EMAIL)
        self.host.get_by_label("パスワード").fill(PASSWORD)
        self.host.get_by_role("button", name="ログイン").click()
        self.host.wait_for_url(f"{server.url}/host")
        self.steps: list[dict[str, float]] = []

    def phone(self) -> Any:
        profile = dict(self.playwright.devices[PHONE])
        profile.pop("default_browser_type", None)  # Chromium plays the phone here
        context = self.browser.new_context(**{"locale": "ja-JP", **profile})
        context.set_default_timeout(self.timeout_ms)
        context.add_init_script(FIRST_FRAME)
        return context.new_page()

    def both_decoded(self, guest: Any, start: float) -> float:
        """Wait (bounded) for a decoded frame on both sides; the time from ``start`` to the later of the two
        moments. Notes that side's steps in ``self.steps``."""
        for page in (self.host, guest):
            page.wait_for_function("() => window.firstFrameAt !== null", timeout=self.timeout_ms)
        marks = [page.evaluate("window.joinMarks") for page in (self.host, guest)]
        later = max(marks, key=lambda side: float(side["frame"]))
        self.steps.append(phases(start, later))
        return float(later["frame"]) - start

    def end(self, guest: Any) -> None:
        self.host.get_by_role("button", name="終了").click()
        guest.get_by_role("heading", name="商談は終了しました。").wait_for()
        guest.context.close()
        self.host.goto(f"{self.server.url}/host")

    def by_link(self, index: int) -> float:
        self.host.get_by_label("お客さまの携帯電話番号").fill(f"090-1234-{5600 + index:04d}")
        self.host.get_by_role("button", name="SMSを送信").click()
        self.host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
        link = self.server.call(last_link(self.server))
        guest = self.phone()
        guest.goto(link)
        tapped = float(guest.evaluate("performance.timeOrigin"))
        guest.get_by_role("button", name="接続する").click()
        guest.get_by_role("dialog").get_by_role("button", name="同意して進む").click()
        took = self.both_decoded(guest, tapped)
        self.end(guest)
        return took

    def by_number(self) -> float:
        guest = self.phone()
        guest.goto(f"{self.server.url}/")
        guest.get_by_role("button", name="接続ナンバーを発行").click()
        guest.get_by_role("dialog").get_by_role("button", name="同意して進む").click()
        guest.wait_for_function("() => /^\\d{4}$/.test(document.getElementById('number-digits').textContent)")
        number = guest.locator("#number-digits").inner_text()
        self.host.evaluate(NOTE_START)
        self.host.locator("input.digit").first.click()
        self.host.keyboard.type(number)
        self.host.get_by_role("button", name="電話商談を開始する").click()
        self.host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
        started = float(self.host.evaluate("Number(sessionStorage.getItem('startAt'))"))
        took = self.both_decoded(guest, started)
        self.end(guest)
        return took

    def baseline(self) -> float:
        page = self.phone()
        page.goto(f"{self.server.url}/")
        took = float(page.evaluate(OWN_CAMERA))
        page.context.close()
        return took


async def last_link(server: LiveServer) -> str:
    async with services(server.app).sessions() as db:
        sms = await db.scalar(select(SmsMessage).order_by(SmsMessage.id.desc()).limit(1))
    assert sms is not None
    found = re.search(r"https?://\S+/j/\S+", sms.body)
    assert found is not None, sms.body
    return found.group(0)


def run(joins: int, timeout_s: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    waits_pass_the_policy()
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-join-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'bench.db'}",
            secret_key=secrets.token_hex(32),
            ice_host_addresses=("127.0.0.1",),  # aioice leaves loopback out; the namespace has nothing else
            number_issues_per_10_minutes=10 * joins + 10,
        )
        upgrade(settings.database_url)
        server = LiveServer(create_app(settings))
        server.start()
        try:
            server.call(seed_org(server.app, "bench", {HOST_EMAIL: Role.HOST}))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=launch_args()
                )
                try:
                    bench = Bench(playwright, browser, server, timeout_s)
                    bench.baseline()  # warm: the first camera in a browser costs more than any later one
                    link, number, base = [], [], []
                    for index in range(joins):  # interleaved, so load on the box falls on all three alike
                        base.append(bench.baseline())
                        link.append(bench.by_link(index))
                        number.append(bench.by_number())
                finally:
                    browser.close()
        finally:
            server.stop()
    both = link + number
    steps = {
        f"join_step_{name}_p50_ms": statistics.median(step[name] for step in bench.steps) for name in PHASES
    }
    return {
        "join_first_frame_p50_ms": percentile(both, 50),
        "join_first_frame_p95_ms": percentile(both, 95),
        "join_link_first_frame_p50_ms": percentile(link, 50),
        "join_link_first_frame_p95_ms": percentile(link, 95),
        "join_number_first_frame_p50_ms": percentile(number, 50),
        "join_number_first_frame_p95_ms": percentile(number, 95),
        "baseline_page_and_camera_p50_ms": percentile(base, 50),
        "baseline_page_and_camera_p95_ms": percentile(base, 95),
        **steps,
        "join_to_baseline_ratio": percentile(both, 50) / percentile(base, 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--joins", type=int, default=10, help="joins of each kind (default 10)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds any one step may take")
    args = parser.parse_args()
    configure_logging("console", "warning")
    print(f"# joins: {args.joins} by link and {args.joins} by number; load average {os.getloadavg()[0]:.1f}")
    figures = run(args.joins, args.timeout)
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if "ratio" in name else f"{name}: {value:.0f}")
    print(f"# load average after: {os.getloadavg()[0]:.1f}")
    print(f"targets_met: {'yes' if figures['join_first_frame_p50_ms'] < TARGET_P50_MS else 'no'}")


if __name__ == "__main__":
    main()
