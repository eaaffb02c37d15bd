"""組織の設定: an admin edits its own org's name, guest-facing texts and pre-connect defaults."""

from __future__ import annotations

import re
from html import unescape

import httpx
from starlette.applications import Starlette

from store.models import Org, Role
from tests.conftest import make_client
from tests.helpers import csrf_token, seed_org, sign_in
from web.services import services

FORM = {
    "name": "株式会社アクメ",
    "terms_of_use": "",
    "personal_data_policy": "",
    "privacy_policy": "",
    "default_camera": "on",
}


async def _org(app: Starlette, org_id: int) -> Org:
    async with services(app).sessions() as db:
        org = await db.get(Org, org_id)
        assert org is not None
        return org


def _body(response: httpx.Response) -> str:
    """The page without <head>, whose i18n catalogue holds every translated string."""
    return response.text.partition("<body")[2]


def _checkbox(html: str, element_id: str) -> bool:
    match = re.search(rf'<input[^>]*id="{element_id}"[^>]*>', html)
    assert match, f"no #{element_id} on the page"
    return "checked" in match.group(0)


def _policies(html: str) -> list[str]:
    return [unescape(text) for text in re.findall(r'<p class="policy">(.*?)</p>', html, re.S)]


async def _save(client: httpx.AsyncClient, **fields: str | None) -> httpx.Response:
    """Post the settings form; a field set to None is left out (an unchecked checkbox)."""
    token = await csrf_token(client, "/admin/settings")
    data = {**FORM, **fields, "csrf_token": token}
    return await client.post("/admin/settings", data={k: v for k, v in data.items() if v is not None})


async def test_custom_texts_reach_the_guest_page_and_empty_brings_back_the_default(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    acme = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await seed_org(app, "other", {"admin@other.example": Role.ADMIN})
    defaults = _policies((await client.get("/g/acme")).text)
    assert len(defaults) == 3 and all(defaults)

    await sign_in(client, "admin@acme.example")
    page = await client.get("/admin/settings")
    assert page.status_code == 200 and "<h1>組織の設定</h1>" in _body(page) and "利用規約" in _body(page)
    # The built-in texts are the placeholders, so the admin sees what guests get while a box is empty.
    for default in defaults:
        assert f'placeholder="{default}"' in unescape(_body(page))

    saved = await _save(
        client,
        name="  株式会社アクメ  ",
        terms_of_use="  第1条 画面を録画しないでください。\r\n第2条 <b>共有禁止</b>  \r\n",
        privacy_policy="録画は社内でのみ使います。",
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/settings?saved=1"
    after = _body(await client.get(saved.headers["location"]))
    assert "設定を保存しました" in after and 'value="株式会社アクメ"' in after
    assert "設定を保存しました" not in _body(await client.get("/admin/settings"))

    guest = (await client.get("/g/acme")).text
    assert "株式会社アクメ" in guest
    assert _policies(guest) == [
        "第1条 画面を録画しないでください。\n第2条 <b>共有禁止</b>",  # stripped, line break kept, escaped
        defaults[1],  # left empty: the built-in text
        "録画は社内でのみ使います。",
    ]
    assert "<b>共有禁止</b>" not in guest
    assert _policies((await client.get("/g/other")).text) == defaults  # another org keeps the defaults

    # Clearing a text (whitespace only counts as empty) brings the default back.
    assert (await _save(client, terms_of_use=" \r\n ", privacy_policy="")).status_code == 303
    assert _policies((await client.get("/g/acme")).text) == defaults
    org = await _org(app, acme.org_id)
    assert (org.name, org.terms_of_use, org.privacy_policy) == ("株式会社アクメ", "", "")


async def test_pre_connect_defaults_show_on_the_hosts_screen(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN, "host@acme.example": Role.HOST})
    await sign_in(client, "admin@acme.example")
    async with make_client(app) as host:
        await sign_in(host, "host@acme.example")
        before = (await host.get("/host")).text
        assert _checkbox(before, "opt-camera") and not _checkbox(before, "opt-recording")

        # Unchecked boxes are simply absent from the form.
        assert (await _save(client, default_camera=None, default_recording="on")).status_code == 303
        page = (await client.get("/admin/settings")).text
        assert not _checkbox(page, "default-camera") and _checkbox(page, "default-recording")
        after = (await host.get("/host")).text
        assert not _checkbox(after, "opt-camera") and _checkbox(after, "opt-recording")

        assert (await _save(client, default_camera="on")).status_code == 303
        again = (await host.get("/host")).text
        assert _checkbox(again, "opt-camera") and not _checkbox(again, "opt-recording")


async def test_invalid_input_is_refused_and_nothing_changes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    seeded = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await sign_in(client, "admin@acme.example")
    assert (await _save(client, terms_of_use="元の規約")).status_code == 303
    original = await _org(app, seeded.org_id)

    # ASCII: web.middleware.MAX_FORM_BYTES (64 KiB) caps the urlencoded form before this page sees it, and
    # a Japanese character takes 9 bytes there, so 10,000 of them cannot arrive today.
    too_long = "a" * 10_001
    refused = await _save(
        client, name="新しい名前", terms_of_use="新しい規約", privacy_policy=too_long, default_camera=None
    )
    page = _body(refused)
    assert refused.status_code == 400
    assert "「プライバシーポリシー」は10,000文字以内で入力してください。" in page
    assert "設定は保存されていません" in page and "設定を保存しました" not in page
    # What was typed is kept for correcting.
    assert 'value="新しい名前"' in page and "新しい規約</textarea>" in page
    assert too_long in page and not _checkbox(page, "default-camera")

    empty_name = await _save(client, name="   ", terms_of_use="新しい規約")
    assert empty_name.status_code == 400 and "組織名を入力してください。" in _body(empty_name)
    long_name = await _save(client, name="名" * 201)
    assert long_name.status_code == 400 and "組織名は200文字以内で入力してください。" in _body(long_name)

    now = await _org(app, seeded.org_id)
    assert (now.name, now.terms_of_use, now.privacy_policy, now.default_camera) == (
        original.name,
        "元の規約",
        "",
        True,
    )
    assert original.name == "株式会社アクメ"

    assert (await _save(client, terms_of_use="a" * 10_000)).status_code == 303  # the limit itself is fine
    assert len((await _org(app, seeded.org_id)).terms_of_use) == 10_000


async def test_english_error_message(app: Starlette, client: httpx.AsyncClient) -> None:
    await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await sign_in(client, "admin@acme.example")
    client.headers["accept-language"] = "en"
    refused = await _save(client, personal_data_policy="x" * 10_001)
    assert refused.status_code == 400
    assert "Handling of personal data must be at most 10,000 characters." in _body(refused)


async def test_hosts_and_managers_get_403(app: Starlette, client: httpx.AsyncClient) -> None:
    seeded = await seed_org(
        app,
        "acme",
        {"admin@acme.example": Role.ADMIN, "host@acme.example": Role.HOST, "boss@acme.example": Role.MANAGER},
    )
    for email in ("host@acme.example", "boss@acme.example"):
        async with make_client(app) as other:
            await sign_in(other, email)
            assert (await other.get("/admin/settings")).status_code == 403
            token = await csrf_token(other, "/account")
            refused = await other.post(
                "/admin/settings", data={**FORM, "name": "乗っ取り", "csrf_token": token}
            )
            assert refused.status_code == 403
            assert "/admin/settings" not in (await other.get("/account")).text  # no nav link either
    assert (await _org(app, seeded.org_id)).name == "ACME"
    assert (await client.get("/admin/settings")).status_code == 303  # anonymous: sent to sign in
    await sign_in(client, "admin@acme.example")
    assert 'href="/admin/settings"' in (await client.get("/manage")).text


async def test_an_admin_edits_only_its_own_org(app: Starlette, client: httpx.AsyncClient) -> None:
    org_a = await seed_org(app, "org-a", {"admin@a.example": Role.ADMIN})
    org_b = await seed_org(app, "org-b", {"admin@b.example": Role.ADMIN})
    b_before = await _org(app, org_b.org_id)
    await sign_in(client, "admin@a.example")
    page = (await client.get("/admin/settings")).text
    assert 'value="ORG-A"' in page and "ORG-B" not in page
    # Extra fields naming org B are ignored: the page always edits the caller's org.
    saved = await _save(
        client,
        name="A社",
        terms_of_use="A社の規約",
        default_recording="on",
        org_id=str(org_b.org_id),
        slug="org-b",
    )
    assert saved.status_code == 303
    a_after, b_after = await _org(app, org_a.org_id), await _org(app, org_b.org_id)
    assert (a_after.name, a_after.terms_of_use, a_after.default_recording) == ("A社", "A社の規約", True)
    assert a_after.slug == "org-a"
    assert (b_after.name, b_after.terms_of_use, b_after.default_camera, b_after.default_recording) == (
        b_before.name,
        "",
        True,
        False,
    )
    assert "A社の規約" not in (await client.get("/g/org-b")).text
