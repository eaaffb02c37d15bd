"""WebKit (Safari's engine) for the guest pages: Debian's WebKitGTK driven through its WebKitWebDriver by
Selenium, on a private Xvfb display (see ../shared/notes/webkit-tests.md).

Debian builds WebKitGTK without WebRTC (no ``RTCPeerConnection``), so a WebKit guest exercises every guest
page and every part of a call but video: exactly the "video optional" case. It is slow to start: one
session per test module at most.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# An iPhone's Safari, as most customers join (the pages choose their phone layout and help by it).
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.5 Mobile/15E148 Safari/604.1"
)
# MiniBrowser's smallest window gives a 447 px wide page; the height of an iPhone 13's screen.
WINDOW = (390, 844)


def webkit_missing() -> str | None:
    """Why the WebKit tests cannot run here, or None (make test installs the Debian packages)."""
    for program, package in (("WebKitWebDriver", "webkit2gtk-driver"), ("Xvfb", "xvfb")):
        if shutil.which(program) is None:
            return f"{program} is not installed: apt-get install -y {package}"
    return None


@contextlib.contextmanager
def xvfb(within: float = 15.0) -> Iterator[str]:
    """A private X display (no TCP: nothing but a Unix socket), yielding its DISPLAY value."""
    read, write = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        number = b""
        deadline = time.monotonic() + within
        # Xvfb writes the display number and a newline once it accepts clients.
        while not number.endswith(b"\n"):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Xvfb did not start")
            chunk = os.read(read, 16)
            if not chunk:
                raise RuntimeError("Xvfb did not start")
            number += chunk
        yield f":{number.decode().strip()}"
    finally:
        os.close(read)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def webkit_guest(user_agent: str = IPHONE_UA) -> Iterator[Any]:
    """One WebKitGTK (MiniBrowser) session with the mock camera and ``user_agent``, on its own display."""
    from selenium import webdriver
    from selenium.webdriver.webkitgtk.options import Options
    from selenium.webdriver.webkitgtk.service import Service

    with xvfb() as display, tempfile.TemporaryDirectory(prefix="webkit-") as home:
        options = Options()
        # Custom arguments replace the driver's defaults, so --automation must be among them.
        for argument in (
            "--automation",
            "--enable-media-stream=true",
            "--enable-mock-capture-devices=true",
            f"--user-agent={user_agent}",
        ):
            options.add_argument(argument)
        environment = {
            **os.environ,
            "DISPLAY": display,
            "HOME": home,  # WebKit's caches and storage: fresh for each session, gone after it
            "XDG_RUNTIME_DIR": home,
            "XDG_CACHE_HOME": str(Path(home) / "cache"),
            "XDG_DATA_HOME": str(Path(home) / "data"),
        }
        service = Service(executable_path=shutil.which("WebKitWebDriver"), env=environment)
        with warnings.catch_warnings():
            # Selenium's own WebKitGTK driver still passes remote_server_addr the deprecated way.
            warnings.filterwarnings("ignore", "setting remote_server_addr", DeprecationWarning)
            driver = webdriver.WebKitGTK(options=options, service=service)
        try:
            driver.set_window_size(*WINDOW)
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def wait_until(driver: Any, condition: Callable[[Any], Any], within: float = 10.0, what: str = "") -> Any:
    """Poll ``condition(driver)`` (bounded) until it returns something truthy, and return that."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, within, poll_frequency=0.1).until(condition)
    except WebDriverException as error:
        raise AssertionError(f"WebKit: not within {within} s: {what or condition}") from error
