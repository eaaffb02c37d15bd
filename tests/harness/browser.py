"""Debian's Chromium driven by Playwright for Python. Never ``playwright install``."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
TEST_HOSTNAME = "tsunagu.test"

# See ../shared/notes/webrtc-tests.md for why each flag is here.
CHROMIUM_ARGS = [
    # Three fake cameras, so a test can switch cameras: fake_device_0 (I420) and fake_device_2 (MJPEG);
    # fake_device_1 is a Y16 (depth) camera whose frames the video encoder never takes.
    "--use-fake-device-for-media-stream=device-count=3",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    # A non-local name for the HTTPS test (a phone on the LAN opens the server by name, not as localhost).
    f"--host-resolver-rules=MAP {TEST_HOSTNAME} 127.0.0.1",
]


def launch_args() -> list[str]:
    if not CHROMIUM.exists():
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium")
    return [*CHROMIUM_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
