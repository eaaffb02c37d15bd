"""名刺: editing one's card, its images (checked, re-encoded, stripped), who may see them, the vCard."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from itsdangerous import TimestampSigner
from PIL import Image
from starlette.applications import Starlette

from signaling.models import JoinedVia, RoomState
from signaling.rooms import create_room, set_state
from store.models import BusinessCard, Role
from tests.conftest import make_client, storage_url_for
from tests.helpers import PASSWORD, Seeded, csrf_token, seed_org, sign_in
from web.services import services
from web.settings import Settings
from web.vcard import CardData, fold, vcard

CARD = {
    "family_name": "山田",
    "given_name": "太郎",
    "family_name_reading": "やまだ",
    "given_name_reading": "たろう",
    "company": "株式会社つなぐ",
    "title": "営業部 課長",
    "phone": "03-1234-5678",
    "email": "taro@tsunagu.example",
}


@pytest.fixture
async def acme(app: Starlette) -> Seeded:
    return await seed_org(
        app,
        "acme",
        {"host@acme.example": Role.HOST, "other@acme.example": Role.HOST, "boss@acme.example": Role.MANAGER},
    )


async def _person(app: Starlette, email: str) -> httpx.AsyncClient:
    person = make_client(app)
    await sign_in(person, email, PASSWORD)
    person.headers["X-CSRF-Token"] = await csrf_token(person, "/account")
    return person


@pytest.fixture
async def host(app: Starlette, acme: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    person = await _person(app, "host@acme.example")
    yield person
    await person.aclose()


def png(size: tuple[int, int] = (64, 48), mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif(size: tuple[int, int] = (2000, 1500)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0131] = "secret-software"  # Software
    exif[0x8825] = {1: "N", 2: (35.0, 41.0, 0.0)}  # GPS IFD
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), comment=b"secret comment")
    data = out.getvalue()
    assert b"SecretCam" in data
    return data


async def upload(client: httpx.AsyncClient, slot: str, body: bytes) -> httpx.Response:
    return await client.post(
        f"/api/card/images?slot={slot}",
        content=body,
        headers={"Content-Type": "application/octet-stream", "Accept": "application/json"},
    )


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest) -> str | None:
    """Every test that has an app runs on this box's disk and on a real S3 server."""
    return storage_url_for(request, request.param)


async def files_of(app: Starlette, user_id: int) -> list[str]:
    """The user's stored card images, and any write not finished (none may outlive its request)."""
    storage = services(app).storage
    prefix = f"cards/{user_id}/"
    return [key[len(prefix) :] for key in await storage.keys(prefix)] + await storage.unfinished()


def guest_token_of(client: httpx.AsyncClient, secret_key: str) -> str:
    signed = client.cookies["tsunagu_session"].encode()
    session = json.loads(base64.b64decode(TimestampSigner(secret_key).unsign(signed)))
    return str(session["guest"])


async def room_for(app: Starlette, org_id: int, host_id: int, token: str) -> str:
    async with services(app).sessions.begin() as db:
        room, _record = await create_room(
            db,
            org_id=org_id,
            host_id=host_id,
            via=JoinedVia.NUMBER,
            guest_token=token,
            camera=False,
            recording=False,
            home_node="test",
            now=0,
        )
        return room.id


async def save_card(client: httpx.AsyncClient, **changes: str) -> httpx.Response:
    token = await csrf_token(client, "/card")
    return await client.post("/card", data={**CARD, **changes, "csrf_token": token})


# --- the settings form ------------------------------------------------------------------------------------


async def test_card_is_edited_with_japanese_text(
    host: httpx.AsyncClient, app: Starlette, acme: Seeded
) -> None:
    page = await host.get("/card")
    assert page.status_code == 200 and "名刺" in page.text
    assert 'value="ACME"' in page.text  # a new card starts from the org's name
    saved = await save_card(host)
    assert saved.status_code == 303 and saved.headers["location"] == "/card?saved=1"
    again = await host.get("/card?saved=1")
    assert "名刺を保存しました" in again.text
    for value in CARD.values():
        assert f'value="{value}"' in again.text
    async with services(app).sessions() as db:
        card = await db.get(BusinessCard, acme.users["host@acme.example"])
        assert card is not None and card.org_id == acme.org_id
        assert (card.family_name_reading, card.given_name_reading, card.title) == (
            "やまだ",
            "たろう",
            "営業部 課長",
        )
    assert '<a href="/card">名刺</a>' in (await host.get("/host")).text


async def test_bad_fields_are_refused_clearly_and_kept(host: httpx.AsyncClient) -> None:
    refused = await save_card(host, phone="call me maybe", email="not-an-address", company="会" * 101)
    assert refused.status_code == 400
    assert "名刺は保存されませんでした" in refused.text
    assert "電話番号は 03-1234-5678 のように数字で入力してください" in refused.text
    assert "メールアドレスは name@example.jp の形式で入力してください" in refused.text
    assert "会社名" in refused.text and "100" in refused.text
    assert 'value="call me maybe"' in refused.text and 'value="not-an-address"' in refused.text
    assert 'value="山田"' in refused.text  # what was typed stays
    nameless = await save_card(host, family_name="", given_name="")
    assert nameless.status_code == 400 and "氏名を入力してください" in nameless.text
    # Full-width digits from a Japanese IME are accepted and stored as ASCII; phone and email are optional.
    assert (await save_card(host, phone="０３－１２３４－５６７８")).status_code == 303
    assert 'value="03-1234-5678"' in (await host.get("/card")).text
    assert (await save_card(host, phone="", email="")).status_code == 303


async def test_card_needs_sign_in_and_csrf(app: Starlette, host: httpx.AsyncClient) -> None:
    async with make_client(app) as anonymous:
        assert (await anonymous.get("/card")).status_code == 303
        assert (await upload(anonymous, "photo", png())).status_code in (401, 403)
    no_token = await host.post("/card", data=CARD, headers={"X-CSRF-Token": ""})
    assert no_token.status_code == 403


# --- images -----------------------------------------------------------------------------------------------


async def test_good_images_are_reencoded_and_stripped(
    app: Starlette, host: httpx.AsyncClient, acme: Seeded, settings: Settings
) -> None:
    user_id = acme.users["host@acme.example"]
    sent = await upload(host, "photo", jpeg_with_exif())
    assert sent.status_code == 201, sent.text
    photo_url = sent.json()["photo"]
    assert photo_url.startswith(f"/cards/{user_id}/photo.jpg?v=")
    served = await host.get(photo_url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert b"SecretCam" not in served.content and b"secret" not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "JPEG" and max(image.size) == 1024 and image.size == (1024, 768)
        assert len(image.getexif()) == 0 and "comment" not in image.info

    second = await upload(host, "2", png())
    assert second.status_code == 201
    assert [u.split("?")[0] for u in second.json()["images"]] == [f"/cards/{user_id}/2.jpg"]
    with Image.open(io.BytesIO((await host.get(second.json()["images"][0])).content)) as image:
        assert image.format == "JPEG" and image.size == (64, 48)  # small images are not enlarged
    assert len(await files_of(app, user_id)) == 2
    webp = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(webp, "WEBP")
    assert (await upload(host, "1", webp.getvalue())).status_code == 201
    assert len(await files_of(app, user_id)) == 3
    assert (await host.post("/api/card/images/1/delete")).status_code == 303  # a form post goes back

    replaced = await upload(host, "photo", png((300, 300), "RGB"))
    assert replaced.json()["photo"] != photo_url
    assert len(await files_of(app, user_id)) == 2  # the old photo is gone from the disk
    assert (await host.get(photo_url.split("?")[0])).status_code == 200  # the slot URL shows the new one

    deleted = await host.post("/api/card/images/photo/delete", headers={"Accept": "application/json"})
    assert deleted.status_code == 200 and deleted.json()["photo"] is None
    assert (await host.get(f"/cards/{user_id}/photo.jpg")).status_code == 404
    assert len(await files_of(app, user_id)) == 1
    assert (await host.post("/api/card/images/9/delete")).status_code == 404


async def test_bad_images_are_refused_and_leave_nothing(
    app: Starlette, host: httpx.AsyncClient, acme: Seeded, settings: Settings
) -> None:
    user_id = acme.users["host@acme.example"]
    text = await upload(host, "photo", "これは画像ではありません。\n".encode() * 20)  # a renamed .txt
    assert text.status_code == 415
    assert text.json()["error"]["message"] == "このファイルはJPEG・PNG・WebPの画像ではありません。"
    pdf = await upload(host, "1", b"%PDF-1.7\n" + b"0" * 500)
    assert pdf.status_code == 415
    broken = await upload(host, "photo", png()[:40])  # a PNG signature, then nothing sensible
    assert broken.status_code == 400 and "読み込めませんでした" in broken.json()["error"]["message"]
    too_big = await upload(host, "photo", b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024))
    assert too_big.status_code == 413
    assert too_big.json()["error"]["message"] == "画像が大きすぎます。5MBまでの画像をアップロードできます。"
    bomb = io.BytesIO()
    Image.new("1", (8000, 6000)).save(bomb, "PNG")  # 48 megapixels in a few kilobytes
    assert (await upload(host, "photo", bomb.getvalue())).status_code == 400
    empty = await upload(host, "photo", b"")
    assert empty.status_code == 415
    assert (await upload(host, "4", png())).status_code == 400
    assert await files_of(app, user_id) == []
    page = await host.get("/card")
    assert "/cards/" not in page.text


async def test_who_may_see_card_images(
    app: Starlette, host: httpx.AsyncClient, acme: Seeded, settings: Settings
) -> None:
    host_id = acme.users["host@acme.example"]
    url = (await upload(host, "photo", png())).json()["photo"]
    assert (await host.get(url)).status_code == 200  # the owner
    for email in ("other@acme.example", "boss@acme.example"):  # the same org
        colleague = await _person(app, email)
        assert (await colleague.get(url)).status_code == 200
        await colleague.aclose()
    other_org = await seed_org(app, "other", {"host@other.example": Role.HOST})
    stranger = await _person(app, "host@other.example")
    assert (await stranger.get(url)).status_code == 404
    await stranger.aclose()

    async with make_client(app) as guest, make_client(app) as other_guest:
        await guest.get("/")  # the guest page gives each browser its token
        await other_guest.get("/")
        assert (await guest.get(url)).status_code == 404
        room_id = await room_for(app, acme.org_id, host_id, guest_token_of(guest, settings.secret_key))
        other_host = acme.users["other@acme.example"]
        await room_for(app, acme.org_id, other_host, guest_token_of(other_guest, settings.secret_key))
        other_org_host = other_org.users["host@other.example"]
        await room_for(
            app, other_org.org_id, other_org_host, guest_token_of(other_guest, settings.secret_key)
        )
        assert (await guest.get(url)).status_code == 200  # the guest of this host's room
        assert (await other_guest.get(url)).status_code == 404  # another room's guest
        async with services(app).sessions.begin() as db:
            await set_state(db, room_id, RoomState.ENDED, 60)
        assert (await guest.get(url)).status_code == 404  # the meeting is over
    async with make_client(app) as anonymous:
        assert (await anonymous.get(url)).status_code == 404


# --- in the call ------------------------------------------------------------------------------------------


async def test_card_json_and_vcard_only_for_the_rooms_participants(
    app: Starlette, host: httpx.AsyncClient, acme: Seeded, settings: Settings
) -> None:
    host_id = acme.users["host@acme.example"]
    await save_card(host)
    await upload(host, "photo", png((800, 800), "RGB"))
    await upload(host, "3", png())
    async with make_client(app) as guest, make_client(app) as other_guest:
        await guest.get("/")
        await other_guest.get("/")
        room_id = await room_for(app, acme.org_id, host_id, guest_token_of(guest, settings.secret_key))
        for who in (guest, host):
            card = (await who.get(f"/rooms/{room_id}/card")).json()
            assert card["full_name"] == "山田 太郎" and card["company"] == "株式会社つなぐ"
            assert card["family_name_reading"] == "やまだ" and card["phone"] == "03-1234-5678"
            assert card["photo"].startswith(f"/cards/{host_id}/photo.jpg")
            assert [u.split("?")[0] for u in card["images"]] == [f"/cards/{host_id}/3.jpg"]
            assert (await who.get(card["photo"])).status_code == 200

        response = await guest.get(f"/rooms/{room_id}/card.vcf")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/vcard; charset=utf-8"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert unquote(disposition.split("filename*=UTF-8''")[1]) == "山田太郎.vcf"
        text = response.content.decode("utf-8")
        assert text.endswith("END:VCARD\r\n") and "\n" not in text.replace("\r\n", "")
        unfolded = text.replace("\r\n ", "")
        assert 'N;SORT-AS="やまだ,たろう":山田;太郎;;;\r\n' in unfolded
        assert "X-PHONETIC-LAST-NAME:やまだ\r\n" in unfolded
        photo = next(line for line in unfolded.split("\r\n") if line.startswith("PHOTO:"))
        jpeg = base64.b64decode(photo.removeprefix("PHOTO:data:image/jpeg;base64,"))
        with Image.open(io.BytesIO(jpeg)) as image:
            assert image.format == "JPEG" and max(image.size) <= 400
        assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))

        for outsider in (other_guest,):
            assert (await outsider.get(f"/rooms/{room_id}/card")).status_code == 404
            assert (await outsider.get(f"/rooms/{room_id}/card.vcf")).status_code == 404
        colleague = await _person(app, "other@acme.example")
        assert (await colleague.get(f"/rooms/{room_id}/card")).status_code == 404
        await colleague.aclose()
        assert (await guest.get("/rooms/0123456789abcdef0123456789abcdef/card")).status_code == 404
        async with services(app).sessions.begin() as db:
            await set_state(db, room_id, RoomState.ENDED, 60)
        assert (await guest.get(f"/rooms/{room_id}/card")).status_code == 404
        assert (await host.get(f"/rooms/{room_id}/card")).status_code == 200


async def test_a_host_without_a_card_shows_the_account_name(
    app: Starlette, acme: Seeded, settings: Settings
) -> None:
    async with make_client(app) as guest:
        await guest.get("/")
        host_id = acme.users["host@acme.example"]
        room_id = await room_for(app, acme.org_id, host_id, guest_token_of(guest, settings.secret_key))
        card = (await guest.get(f"/rooms/{room_id}/card")).json()
        assert card["full_name"] == "host" and card["company"] == "ACME" and card["photo"] is None


# --- the vCard itself -------------------------------------------------------------------------------------


SAMPLE = CardData(
    user_id=1,
    family_name="山田",
    given_name="太郎",
    family_name_reading="やまだ",
    given_name_reading="たろう",
    company="株式会社つなぐ",
    title="営業部 課長",
    phone="03-1234-5678",
    email="taro@tsunagu.example",
)


def test_vcard_lines_for_a_sample_card() -> None:
    assert vcard(SAMPLE).split("\r\n") == [
        "BEGIN:VCARD",
        "VERSION:4.0",
        'N;SORT-AS="やまだ,たろう":山田;太郎;;;',
        "FN:山田 太郎",
        "X-PHONETIC-LAST-NAME:やまだ",
        "X-PHONETIC-FIRST-NAME:たろう",
        "ORG:株式会社つなぐ",
        "TITLE:営業部 課長",
        "TEL;TYPE=work:03-1234-5678",
        "EMAIL;TYPE=work:taro@tsunagu.example",
        "END:VCARD",
        "",
    ]


def test_vcard_escapes_text_values() -> None:
    card = CardData(user_id=1, family_name="a;b", given_name="c,d", company="X\\Y", title='"T"')
    lines = vcard(card).split("\r\n")
    assert "N:a\\;b;c\\,d;;;" in lines and "FN:a\\;b c\\,d" in lines
    assert "ORG:X\\\\Y" in lines and 'TITLE:"T"' in lines


@pytest.mark.parametrize("prefix", ["", "a", "ab"])
def test_folding_never_splits_a_character(prefix: str) -> None:
    line = "ORG:" + prefix + "株式会社つなぐ" * 20 + "🙂" * 10
    folded = fold(line)
    parts = folded.split("\r\n")
    assert len(parts) > 3
    for index, part in enumerate(parts):
        raw = part.encode("utf-8")  # would raise if a character had been split
        assert len(raw) <= 75
        assert len(raw) >= 72 or index == len(parts) - 1  # lines are filled, not folded early
        assert index == 0 or part.startswith(" ")
    assert "".join(p if i == 0 else p[1:] for i, p in enumerate(parts)) == line
    assert fold("BEGIN:VCARD") == "BEGIN:VCARD"


async def test_images_are_kept_under_data_dir_by_default(tmp_path: Path) -> None:
    from core.storage import open_storage
    from web.card_images import card_key

    assert card_key(7, "photo-0123abcd.jpg") == "cards/7/photo-0123abcd.jpg"
    assert card_key(7, "../../etc/passwd") == "cards/7/passwd"  # only ever a name under the user's folder
    assert card_key(7, "") is None and card_key(7, "..") is None
    storage = open_storage(None, tmp_path)
    await storage.put("cards/7/photo-0123abcd.jpg", b"jpeg")
    assert (tmp_path / "cards" / "7" / "photo-0123abcd.jpg").read_bytes() == b"jpeg"
