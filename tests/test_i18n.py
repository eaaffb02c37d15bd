"""Japanese by default, English on request, and no UI string left untranslated."""

from __future__ import annotations

from pathlib import Path

import httpx
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from starlette.applications import Starlette

from tests.helpers import csrf_token
from web.i18n import catalogue, negotiate

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {
    "_": None,
    "N_": None,
    "t": None,
    "InvalidInput": None,
    "Conflict": None,
    "NotFound": None,
    "Forbidden": None,
    "RateLimited": (2,),
}


def _method_map() -> list[tuple[str, str]]:
    """Read babel.cfg, the same mapping `make messages` uses."""
    methods = []
    for line in (ROOT / "babel.cfg").read_text().splitlines():
        if line.startswith("["):
            method, _, pattern = line.strip("[]").partition(":")
            methods.append((pattern.strip(), method.strip()))
    return methods


def test_every_ui_string_has_a_japanese_translation() -> None:
    msgids = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(ROOT), _method_map(), keywords=KEYWORDS)
    }
    assert len(msgids) > 40
    missing = sorted(m for m in msgids if m not in catalogue("ja"))
    assert missing == [], f"add Japanese translations (make messages): {missing}"


def test_accept_language_negotiation() -> None:
    assert negotiate(None) == "ja"
    assert negotiate("fr-FR,fr;q=0.9") == "ja"
    assert negotiate("en-US,en;q=0.9,ja;q=0.8") == "en"
    assert negotiate("ja,en-US;q=0.9") == "ja"
    assert negotiate("en;q=0.5,ja;q=0.9") == "ja"
    assert negotiate("en;q=0,ja;q=bad") == "ja"


async def test_guest_page_is_japanese_by_default_and_english_on_request(client: httpx.AsyncClient) -> None:
    ja = await client.get("/")
    assert '<html lang="ja">' in ja.text and "接続ナンバーを発行" in ja.text
    en = await client.get("/", headers={"accept-language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in en.text and "Issue connect number" in en.text


async def test_language_switch_sticks_for_the_browser(client: httpx.AsyncClient) -> None:
    token = await csrf_token(client, "/")
    response = await client.post("/language", data={"lang": "en", "next": "/", "csrf_token": token})
    assert response.status_code == 303
    assert "Issue connect number" in (await client.get("/")).text
    bad = await client.post("/language", data={"lang": "xx", "csrf_token": token})
    assert bad.status_code == 400


async def test_signed_in_users_language_is_saved(app: Starlette, client: httpx.AsyncClient) -> None:
    from store.models import Role
    from tests.conftest import make_client
    from tests.helpers import seed_org, sign_in

    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    await sign_in(client, "host@acme.example")
    token = await csrf_token(client, "/host")
    await client.post("/language", data={"lang": "en", "next": "/host", "csrf_token": token})
    async with make_client(app) as elsewhere:
        await sign_in(elsewhere, "host@acme.example")
        assert "Phone meeting (1:1)" in (await elsewhere.get("/host")).text


def test_the_catalogue_defines_each_message_once() -> None:
    """Branches merged with git's union driver can leave a msgid twice, and the two may disagree (one word
    for a count in a table and for a button): Babel then silently keeps one of them."""
    catalogue_file = ROOT / "web" / "locale" / "ja" / "LC_MESSAGES" / "messages.po"
    msgids: list[str] = []
    current: list[str] | None = None
    for line in catalogue_file.read_text(encoding="utf-8").splitlines():
        if line.startswith('msgid "'):
            current = [line[len('msgid "') : -1]]
            msgids.append("")
        elif line.startswith('"') and current is not None:
            current.append(line[1:-1])
        else:
            if current is not None:
                msgids[-1] = "".join(current)
            current = None
    duplicated = sorted({msgid for msgid in msgids if msgids.count(msgid) > 1} - {""})
    assert not duplicated


def test_no_translation_is_left_fuzzy() -> None:
    # The pages show a fuzzy entry's text as it is (web/i18n.py reads the .po), so a msgid changed under a
    # translation must be re-read and the flag dropped, not left for someone to notice.
    catalogue_file = ROOT / "web" / "locale" / "ja" / "LC_MESSAGES" / "messages.po"
    with catalogue_file.open("rb") as f:
        fuzzy = [str(message.id) for message in read_po(f, locale="ja") if message.id and message.fuzzy]
    assert fuzzy == [], f"review these translations and drop their fuzzy flag: {fuzzy}"
