"""The tsunagu command: db upgrade, org add, user add, demo (idempotent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from web.cli import DEMO_USERS, main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert main(["db", "upgrade"]) == 0
    return tmp_path


def test_org_and_user_add(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["org", "add", "acme", "--name", "アクメ"]) == 0
    assert (
        main(
            [
                "user",
                "add",
                "--org",
                "acme",
                "--role",
                "host",
                "--email",
                "h@acme.example",
                "--password",
                "long-enough-pw",
            ]
        )
        == 0
    )
    assert "user added: h@acme.example (host)" in capsys.readouterr().out
    assert main(["user", "add", "--org", "acme", "--role", "manager", "--email", "m@acme.example"]) == 0
    assert "password:" in capsys.readouterr().out  # generated and shown when none is given
    assert (
        main(
            [
                "user",
                "add",
                "--org",
                "nope",
                "--role",
                "host",
                "--email",
                "x@y.example",
                "--password",
                "long-enough-pw",
            ]
        )
        == 1
    )
    assert "その組織は存在しません" not in capsys.readouterr().err  # the CLI speaks English
    assert main(["org", "add", "acme"]) == 1


def test_secret_key_is_generated_once_and_kept(env: Path) -> None:
    key_file = env / "var" / "secret_key"
    first = key_file.read_text()
    assert len(first) >= 40 and oct(key_file.stat().st_mode)[-3:] == "600"
    from web.settings import Settings

    assert Settings.from_env().secret_key == first


def test_demo_is_idempotent_and_prints_working_logins(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    first = capsys.readouterr().out
    assert main(["demo"]) == 0
    second = capsys.readouterr().out
    assert first == second
    for email, _name, role in DEMO_USERS:
        assert email in first and role.value in first
    logins = json.loads((env / "var" / "demo-logins.json").read_text())
    assert set(logins) == {email for email, _, _ in DEMO_USERS}
    # Losing the logins file resets the demo passwords rather than failing.
    (env / "var" / "demo-logins.json").unlink()
    assert main(["demo"]) == 0
    assert capsys.readouterr().out != first
