"""Finding 10 (names): a name over 255 bytes lost its extension when shortened, and a ZWJ emoji sequence
was split (its joiners were even dropped as format characters). Through the real upload paths."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from core.names import graphemes
from store.models import Role
from tests.conftest import make_client
from tests.harness import pdfs
from tests.helpers import csrf_token, seed_org, sign_in

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # one picture: four people joined by zero width joiners (25 bytes)
FLAG = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # Scotland: a flag and its tags


@pytest.fixture
async def host(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    async with make_client(app) as client:
        await sign_in(client, "host@acme.example")
        client.headers["X-CSRF-Token"] = await csrf_token(client, "/documents")
        client.headers["Accept"] = "application/json"
        yield client


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("お見積り_" + "長" * 120 + ".pdf", "お見積り_" + "長" * 79 + ".pdf"),  # 377 bytes → 254, .pdf kept
        (FAMILY * 12 + ".pdf", FAMILY * 10 + ".pdf"),  # 10 whole families (254 bytes), never half of one
        ("家族" + FAMILY + FLAG + ".pdf", "家族" + FAMILY + FLAG + ".pdf"),  # short: the joiners stay
    ],
    ids=["Japanese", "ZWJ sequences", "joiners and flag tags kept"],
)
async def test_long_names_keep_their_extension_and_whole_characters(
    host: httpx.AsyncClient, raw: str, kept: str
) -> None:
    uploaded = await host.post("/api/documents", params={"name": raw}, content=pdfs.text_pdf(1))
    assert uploaded.status_code == 202, uploaded.text
    name = uploaded.json()["name"]
    assert name == kept
    assert len(name.encode()) <= 255 and name.endswith(".pdf")
    assert all(cluster in graphemes(raw) for cluster in graphemes(name))  # no character cut in two


async def test_a_long_name_sent_in_a_meeting_keeps_its_extension(
    app: Starlette, host: httpx.AsyncClient
) -> None:
    from tests.test_files import _host, _meeting

    meeting = await _meeting(app, await _host(app, "host@acme.example"))
    try:
        raw = "議事録（" + FAMILY * 20 + "）.docx"
        sent = await meeting.guest.client.post(
            f"/api/rooms/{meeting.room_id}/files",
            params={"name": raw},
            content=b"minutes",
            headers={"X-CSRF-Token": meeting.guest.csrf, "Accept": "application/json"},
        )
        assert sent.status_code == 201, sent.text
        name = sent.json()["name"]
        assert name == "議事録（" + FAMILY * 9 + ".docx"  # 237 + 5 bytes: the tenth family would not fit
        download = await meeting.host.client.get(sent.json()["url"])
        assert download.status_code == 200 and ".docx" in download.headers["content-disposition"]
    finally:
        await meeting.host.client.aclose()
        await meeting.guest.client.aclose()
