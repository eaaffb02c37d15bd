"""Real Chromium against real servers: what a person does first."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from store.models import Role
from tests.harness.live import LiveServer
from tests.harness.ports import free_port, wait_for_port
from tests.helpers import PASSWORD, seed_org

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser


def _read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Collect make's output until a line matches (bounded by time)."""
    seen = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{''.join(seen)}")


def test_make_run_serves_the_guest_page_and_the_printed_login_works(tmp_path: Path, page) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(tmp_path / "var"), "LOG_FORMAT": "json"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = _read_until(process, r"host login:\s+http", timeout=90)
        guest_url = re.search(r"guest page:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        login_url = re.search(r"host login:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        email, password = re.search(r"host\s+(host1@\S+)\s+password: (\S+)", output).groups()  # type: ignore[union-attr]
        assert guest_url == f"http://127.0.0.1:{port}/"
        wait_for_port(port, timeout=30)

        page.goto(guest_url)
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.get_by_role("button", name="接続ナンバーを発行").is_visible()

        page.goto(login_url)
        page.get_by_label("メールアドレス").fill(email)
        page.get_by_label("パスワード").fill("wrong-password")
        page.get_by_role("button", name="ログイン").click()
        assert page.get_by_role("alert").inner_text() == "メールアドレスまたはパスワードが正しくありません。"

        page.get_by_label("パスワード").fill(password)
        page.get_by_role("button", name="ログイン").click()
        page.wait_for_url(f"http://127.0.0.1:{port}/host")
        assert page.get_by_role("heading", name="電話商談(1対1)").is_visible()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        assert process.stdout is not None
        process.stdout.close()


def test_admin_adds_a_user_through_the_page(live_server: LiveServer, page) -> None:  # type: ignore[no-untyped-def]
    live_server.call(seed_org(live_server.app, "acme", {"admin@acme.example": Role.ADMIN}))
    page.goto(f"{live_server.url}/login")
    page.get_by_label("メールアドレス").fill("admin@acme.example")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"{live_server.url}/manage")
    page.get_by_role("link", name="ユーザー管理").first.click()
    form = page.locator("form.grid")
    form.get_by_label("氏名").fill("新人 花子")
    form.get_by_label("メールアドレス").fill("hanako@acme.example")
    form.get_by_label("権限").select_option("host")
    form.get_by_label("初期パスワード").fill("first-password-1")
    form.get_by_role("button", name="追加").click()
    assert page.get_by_role("status").inner_text() == "ユーザーを追加しました。"
    row = page.locator('tr[data-email="hanako@acme.example"]')
    assert "ホスト" in row.inner_text()
    row.get_by_role("button", name="無効にする").click()
    assert "無効" in page.locator('tr[data-email="hanako@acme.example"]').inner_text()

    page.get_by_role("button", name="English").click()
    assert page.get_by_role("heading", name="Users").is_visible()
