"""名刺 in real Chromium: the host fills in its card, the phone guest opens it in the call and saves it."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.calls import PHONE, issue_number, signed_in_host, type_number
from tests.harness.live import LiveServer

pytestmark = pytest.mark.browser


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "顔写真.png"
    Image.new("RGB", (320, 400), (30, 90, 160)).save(path, "PNG")
    return path


def test_guest_opens_and_saves_the_hosts_card(
    server: LiveServer, new_context: Callable[..., Any], tmp_path: Path
) -> None:
    host = signed_in_host(new_context, server)
    host.get_by_role("link", name="名刺").click()
    host.wait_for_url(f"{server.url}/card")
    for label, value in {
        "姓": "山田",
        "名": "太郎",
        "姓（ふりがな）": "やまだ",
        "名（ふりがな）": "たろう",
        "会社名": "株式会社つなぐ",
        "役職": "営業部 課長",
        "電話番号": "03-1234-5678",
        "メールアドレス": "taro@tsunagu.example",
    }.items():
        host.get_by_label(label, exact=True).fill(value)
    host.get_by_role("button", name="保存").click()
    host.get_by_text("名刺を保存しました。").wait_for()
    host.locator('.card-slot[data-slot="photo"] input[type=file]').set_input_files(_photo(tmp_path))
    preview = host.locator('.card-slot[data-slot="photo"] img[data-preview]')
    host.wait_for_function(
        "img => !img.hidden && img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )

    guest = new_context(device=PHONE).new_page()
    guest.goto(f"{server.url}/")
    host.goto(f"{server.url}/host")
    type_number(host, issue_number(guest))
    host.wait_for_url(re.compile(r"/rooms/[0-9a-f]{32}$"))
    guest.wait_for_url(host.url)

    guest.get_by_role("button", name="名刺", exact=True).click()
    dialog = guest.get_by_role("dialog")
    dialog.get_by_text("山田 太郎").wait_for()
    assert dialog.get_by_text("株式会社つなぐ").is_visible()
    assert dialog.get_by_text("やまだ たろう").count() == 1
    assert dialog.get_by_role("link", name="03-1234-5678").get_attribute("href") == "tel:0312345678"
    assert dialog.get_by_role("link", name="taro@tsunagu.example").get_attribute("href") == (
        "mailto:taro@tsunagu.example"
    )
    photo = dialog.locator("img[data-card-photo]")
    guest.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=photo.element_handle())

    with guest.expect_download() as vcf_download:
        dialog.get_by_role("link", name="連絡先に保存").click()
    vcf = vcf_download.value
    assert vcf.suggested_filename == "山田太郎.vcf"
    text = Path(vcf.path()).read_bytes().decode("utf-8")
    unfolded = text.replace("\r\n ", "")
    assert text.startswith("BEGIN:VCARD\r\nVERSION:4.0\r\n")
    assert 'N;SORT-AS="やまだ,たろう":山田;太郎;;;\r\n' in unfolded
    assert "FN:山田 太郎\r\n" in unfolded and "ORG:株式会社つなぐ\r\n" in unfolded
    assert "PHOTO:data:image/jpeg;base64," in unfolded

    with guest.expect_download() as png_download:
        dialog.get_by_role("button", name="画像で保存").click()
    image = png_download.value
    assert image.suggested_filename == "山田太郎.png"
    data = Path(image.path()).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    with Image.open(io.BytesIO(data)) as drawn:
        assert drawn.size == (1092, 660)

    dialog.get_by_role("button", name="閉じる").click()
    assert not dialog.is_visible()
    # The host sees a preview of the same card.
    host.get_by_role("button", name="名刺（プレビュー）").click()
    host.get_by_role("dialog").get_by_text("山田 太郎").wait_for()
