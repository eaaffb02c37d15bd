"""The tsunagu command: db upgrade, org add, user add, demo (idempotent)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from documents.models import Document
from store.db import create_engine, session_factory
from store.models import BusinessCard, MemoTemplate
from web.cli import main
from web.demo import DEMO_USERS, SAMPLE_DOCUMENT
from web.demo_meetings import MEETINGS


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
    assert first.endswith(second)  # the same logins (the first run also logs preparing the document)
    for email, _name, role in DEMO_USERS:
        assert email in first and role.value in first
    logins = json.loads((env / "var" / "demo-logins.json").read_text())
    assert set(logins) == {email for email, _, _ in DEMO_USERS}
    # A few finished meetings for the console, added once, and found by a two-character word.
    assert asyncio.run(_demo_meetings(env)) == (len(MEETINGS), 2)
    # Losing the logins file resets the demo passwords rather than failing.
    (env / "var" / "demo-logins.json").unlink()
    assert main(["demo"]) == 0
    assert capsys.readouterr().out != first
    # The demo org's sample document (drawn and prepared at seed time), two shared templates with one default,
    # and a complete card with a photo for each host: once, however many runs.
    documents, templates, cards = asyncio.run(demo_contents())
    assert documents == [("ready", 5)]
    assert len(templates) == 2 and sum(default for _, default in templates) == 1
    assert len(cards) == 2
    for card in cards:
        fields = (card.family_name, card.given_name, card.family_name_reading, card.company, card.title)
        assert all(fields) and card.phone and card.email and card.photo
        assert (env / "var" / "cards" / str(card.user_id) / card.photo).is_file()


async def demo_contents() -> tuple[list[tuple[str, int]], list[tuple[str, bool]], list[BusinessCard]]:
    from web.settings import Settings

    engine = create_engine(Settings.from_env().database_url)
    try:
        async with session_factory(engine)() as db:
            documents = [
                (document.status.value, document.pages)
                for document in await db.scalars(select(Document).where(Document.name == SAMPLE_DOCUMENT))
            ]
            templates = [
                (template.title, template.is_default)
                for template in await db.scalars(select(MemoTemplate).where(MemoTemplate.owner_id.is_(None)))
            ]
            return documents, templates, list(await db.scalars(select(BusinessCard)))
    finally:
        await engine.dispose()


def test_serve_tls_options_win_over_settings_and_phone_urls_are_lan_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress

    from web import tls
    from web.cli import base_url, build_parser, prepare_self_signed, tls_settings
    from web.settings import Settings

    env_settings = Settings(data_dir=tmp_path, database_url="sqlite://", secret_key="k", tls_self_signed=True)
    given = tls_settings(env_settings, build_parser().parse_args(["serve", "--certfile", "c.pem"]))
    assert given.tls_cert_file == Path("c.pem") and not given.tls_self_signed and given.secure_cookies
    lan = tls_settings(env_settings, build_parser().parse_args(["serve", "--tls-name", "tsunagu.test"]))
    assert lan.tls_self_signed and lan.tls_names == ("tsunagu.test",)
    assert base_url(lan, "0.0.0.0", 8443) == "https://127.0.0.1:8443"
    assert (
        base_url(Settings(data_dir=tmp_path, database_url="", secret_key=""), "::1", 80) == "http://[::1]:80"
    )

    monkeypatch.setattr(tls, "lan_addresses", lambda: [ipaddress.ip_address("192.0.2.9")])
    served, lines = prepare_self_signed(lan, "0.0.0.0", 8443)
    assert served.tls_cert_file == tmp_path / "tls" / tls.CERT_NAME and served.tls_key_file is not None
    assert "  https://192.0.2.9:8443/" in lines and "  https://tsunagu.test:8443/" in lines
    assert not any(
        "127.0.0.1:8443" in line for line in lines[lines.index("on a phone on the same network, open:") :]
    )
    again = prepare_self_signed(lan, "0.0.0.0", 8443)[1]
    assert (
        again[0].startswith("self-signed certificate (reused,") and again[1] == lines[1]
    )  # same fingerprint


async def _demo_meetings(env: Path) -> tuple[int, int]:
    from sqlalchemy import func, select

    from recordings.console import RecordFilter, count
    from recordings.models import MeetingRecord
    from signaling.rooms import memo_lines
    from store.db import create_engine, session_factory
    from store.models import Org
    from web.settings import Settings

    engine = create_engine(Settings.from_env().database_url)
    try:
        async with session_factory(engine)() as db:
            org_id = await db.scalar(select(Org.id).where(Org.slug == "demo"))
            assert org_id is not None
            meetings = await db.scalar(select(func.count()).where(MeetingRecord.org_id == org_id))
            found, _capped = await count(db, RecordFilter(org_id=org_id, text="送付"))
            # Their memos are logs of authored updates, as a real meeting's: each line says who wrote it.
            records = await db.scalars(select(MeetingRecord).where(MeetingRecord.org_id == org_id))
            for record in records:
                lines = await memo_lines(db, record.room_id)
                assert "\n".join(line.text for line in lines) == record.memo
                assert all(line.authors in (("host",), ("guest",)) and line.at for line in lines)
            return int(meetings or 0), found
    finally:
        await engine.dispose()
