"""Debian's Chromium driven by Playwright for Python. Never ``playwright install``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

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


_FUNCTION = re.compile(r"^\s*(async\s+)?(function\b|\([^()]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)")


def as_function(expression: str) -> str:
    """A ``wait_for_function`` expression as a function. Playwright evaluates a plain expression anew on
    every poll, which our pages' Content-Security-Policy (no 'unsafe-eval') refuses; a function it
    evaluates once and then calls."""
    return expression if _FUNCTION.match(expression) else f"() => ({expression})"


def waits_pass_the_policy() -> None:
    """Make every ``Page``/``Frame.wait_for_function`` of the sync API take its expression as a function."""
    from playwright.sync_api import Frame, Page

    for kind in (Page, Frame):
        original = kind.wait_for_function
        if getattr(original, "as_function", False):
            continue

        def wait_for_function(
            self: Any, expression: str, *args: Any, _wait: Any = original, **kw: Any
        ) -> Any:
            return _wait(self, as_function(expression), *args, **kw)

        wait_for_function.as_function = True  # type: ignore[attr-defined]
        setattr(kind, "wait_for_function", wait_for_function)  # noqa: B010 - a method replaced on the class
