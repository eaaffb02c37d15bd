"""商談記録 over HTTP: the list and its CSV (exactly the filtered rows, Japanese intact through a BOM and
CRLF), who sees which meeting, editing 商談先情報 with its log, and one meeting's page: memo lines with
authors, the guest's agreement, files for managers, documents with their dwell chart."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from core.clock import ManualClock
from documents.models import Document, DocumentStatus
from recordings import guest_info
from recordings.console import RecordRow
from recordings.files import RoomFileStorage
from recordings.models import MeetingRecord, MemoUpdate, RecordEdit, RoomFile
from recordings.records import end_record, record_page_shown, save_memo
from signaling.memo import SharedMemo
from signaling.models import JoinedVia
from signaling.rooms import DatabaseRoomStore, create_room
from signaling.writer import MemoRow
from store.models import Role
from tests.conftest import make_client
from tests.helpers import Seeded, csrf_from, seed_org, sign_in
from web.records import cell, csv_rows
from web.services import services

BASE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # 18:00 JST
PEOPLE = {
    "host@acme.example": Role.HOST,
    "host2@acme.example": Role.HOST,
    "boss@acme.example": Role.MANAGER,
    "admin@acme.example": Role.ADMIN,
}


@dataclass(frozen=True)
class Made:
    id: int
    room_id: str
    connect_id: str
    host: str
    memo: str
    started: datetime
    tags: tuple[str, ...]
    guest_name: str


async def make_record(
    app: Starlette,
    seeded: Seeded,
    host: str,
    memo: str,
    started: datetime,
    tags: tuple[str, ...] = (),
    guest_name: str = "",
    minutes: int = 30,
) -> Made:
    async with services(app).sessions.begin() as db:
        room, record = await create_room(
            db,
            org_id=seeded.org_id,
            host_id=seeded.users[host],
            via=JoinedVia.NUMBER,
            guest_token=uuid.uuid4().hex,
            camera=True,
            recording=False,
            home_node="test",
            now=started.timestamp(),
        )
        await save_memo(db, room.id, memo)
        await end_record(db, room.id, started + timedelta(minutes=minutes))
        info = guest_info.GuestInfo(guest_name=guest_name, tags=tags)
        await guest_info.edit(db, record, info, seeded.users[host], host, started)
        return Made(record.id, room.id, record.connect_id, host, memo, started, tags, guest_name)


@pytest.fixture
async def acme(app: Starlette) -> Seeded:
    return await seed_org(app, "acme", PEOPLE)


async def signed_in(app: Starlette, email: str) -> httpx.AsyncClient:
    client = make_client(app)
    assert (await sign_in(client, email)).status_code == 303
    return client


def read_csv(response: httpx.Response) -> list[list[str]]:
    data = response.content
    assert data.startswith(b"\xef\xbb\xbf"), "no BOM"
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = data[3:].decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    # Every record ends with CRLF; a memo's own line breaks stay LF inside its quoted cell, as Excel writes.
    assert text.endswith("\r\n") and text.count("\r\n") == len(rows) and "\r" not in text.replace("\r\n", "")
    return rows


async def test_the_csv_has_exactly_the_filtered_rows_in_japanese(app: Starlette, acme: Seeded) -> None:
    made = []
    for n in range(24):
        host = "host@acme.example" if n % 3 else "host2@acme.example"
        memo = f"第{n}回\nお見積もりの件、来週ご連絡" if n % 2 else f"第{n}回 定例のご報告"
        tags = ("展示会",) if n % 4 == 0 else ()
        made.append(await make_record(app, acme, host, memo, BASE + timedelta(days=n), tags, f"山田{n}"))
    boss = await signed_in(app, "boss@acme.example")
    try:
        host2 = acme.users["host2@acme.example"]
        filters = {"q": "見積", "host": str(host2), "from": "2026-06-02", "to": "2026-06-20"}
        # An oracle that does not use the app's queries: the seeded data, filtered in Python (JST dates).
        first, last = datetime(2026, 6, 2, tzinfo=UTC) - timedelta(hours=9), datetime(2026, 6, 21, tzinfo=UTC)
        last -= timedelta(hours=9)
        two = "host2@acme.example"
        expected = [m for m in made if "見積" in m.memo and m.host == two and first <= m.started < last]
        assert expected, "the filter must leave some rows"
        rows = read_csv(await boss.get("/records.csv?" + urlencode(filters)))
        header, body = rows[0], rows[1:]
        assert header[:3] == ["接続ID", "開始日時", "終了日時"]
        assert "メモ" in header and "お客さま名" in header
        assert [row[0] for row in body] == [m.connect_id for m in sorted(expected, key=lambda m: -m.id)]
        memo_cell = body[0][header.index("メモ")]
        assert memo_cell == sorted(expected, key=lambda m: -m.id)[0].memo  # line break and 、 intact
        assert body[0][header.index("担当者")] == "host2"
        assert body[0][header.index("接続方法")] == "接続ナンバー"
        # The page shows the same number of meetings.
        page = await boss.get("/records?" + urlencode(filters))
        assert f"{len(expected)}件" in page.text
        # A tag filter, and no filter at all.
        tagged = read_csv(await boss.get("/records.csv?tag=展示会"))[1:]
        assert sorted(r[0] for r in tagged) == sorted(m.connect_id for m in made if m.tags)
        assert len(read_csv(await boss.get("/records.csv"))) == len(made) + 1
        # A bad date is a clear error, not a silent full export.
        bad = await boss.get("/records.csv?from=2026-13-01", headers={"accept": "application/json"})
        assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]["message"]
    finally:
        await boss.aclose()


async def test_a_cell_a_spreadsheet_would_run_is_exported_as_text(app: Starlette, acme: Seeded) -> None:
    await make_record(app, acme, "host@acme.example", '=HYPERLINK("http://evil.example","見積")', BASE)
    await make_record(app, acme, "host@acme.example", "+1 見積", BASE, guest_name="@SUM(A1)")
    admin = await signed_in(app, "admin@acme.example")
    try:
        rows = read_csv(await admin.get("/records.csv?q=見積"))
        memos = {row[rows[0].index("メモ")] for row in rows[1:]}
        assert memos == {'\'=HYPERLINK("http://evil.example","見積")', "'+1 見積"}
        assert "'@SUM(A1)" in {row[rows[0].index("お客さま名")] for row in rows[1:]}
    finally:
        await admin.aclose()


def test_the_csv_lines_are_what_csv_writer_writes() -> None:
    """csv_rows builds its lines by hand for speed: the oracle is csv.writer over the cells as the console
    means them (formula cells made text, JST stamps, minutes to a tenth), for awkward values."""
    texts = ["", "山田", "=HYPERLINK(1)", 'say "hi"', "a,b", "line\nbreak", "cr\rhere", "-1", "@x", "\tx",
             "+", ' "', "'", "、。"]  # fmt: skip
    start = datetime(2026, 6, 1, 20, 30, 15, 123456)  # naive UTC as SQLite gives it: 05:30:15 JST next day
    rows = []
    for n, value in enumerate(texts):
        seconds = None if n % 5 == 0 else 61 * n + n % 7
        ended = None if n % 4 == 0 else start + timedelta(seconds=n * 3600 + 59)
        started = start.replace(tzinfo=UTC) if n % 2 else start
        how = ("number", "link", value)[n % 3]
        rows.append(
            RecordRow(n, f"{n:07d}" if n % 3 else value, "room", started, ended, seconds, how, n, value,
                      value[::-1], value, value, value, value * 3, value, tuple(texts[n : n + n % 3]), n,
                      (1, 2, 99)[: n % 4])
        )  # fmt: skip
    via, names = {"number": "接続番号", "link": "SMS, link"}, {1: "資料,A", 2: "=B"}

    def stamp(moment: datetime | None) -> str:
        if moment is None:
            return ""
        return (moment.replace(tzinfo=UTC) + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(
        [row.connect_id, stamp(row.started_at), stamp(row.ended_at),
         "" if row.duration_seconds is None else round(row.duration_seconds / 60, 1), cell(row.host_name),
         cell(row.guest_name), cell(row.guest_reading), cell(row.guest_company), cell(row.guest_phone),
         via.get(row.via, row.via), cell(" ".join(row.tags)),
         cell(" / ".join(names.get(d, "") for d in row.documents)), row.files, cell(row.memo),
         cell(row.notes)]
        for row in rows
    )  # fmt: skip
    assert csv_rows(via, rows, names) == buffer.getvalue()
    assert csv_rows(via, [], names) == ""


async def test_hosts_see_their_own_meetings_managers_the_orgs(app: Starlette, acme: Seeded) -> None:
    mine = await make_record(app, acme, "host@acme.example", "お見積もり A", BASE)
    theirs = await make_record(app, acme, "host2@acme.example", "お見積もり B", BASE + timedelta(hours=1))
    other = await seed_org(app, "other", {"admin@other.example": Role.ADMIN})
    host = await signed_in(app, "host@acme.example")
    boss = await signed_in(app, "boss@acme.example")
    stranger = await signed_in(app, "admin@other.example")
    try:
        listing = (await host.get("/records?q=見積")).text
        assert mine.connect_id in listing and theirs.connect_id not in listing
        csv_rows = read_csv(await host.get("/records.csv?host=" + str(acme.users["host2@acme.example"])))
        assert [row[0] for row in csv_rows[1:]] == [mine.connect_id]  # a host's filter is always its own
        assert (await host.get(f"/records/{theirs.id}")).status_code == 404
        assert (await host.get(f"/records/{mine.id}")).status_code == 200
        everything = (await boss.get("/records")).text
        assert mine.connect_id in everything and theirs.connect_id in everything
        assert (await stranger.get(f"/records/{mine.id}")).status_code == 404
        assert mine.connect_id not in (await stranger.get("/records")).text
        assert other.org_id != acme.org_id
        assert (await host.get("/reports")).status_code == 403
        assert (await boss.get("/reports")).status_code == 200
    finally:
        for client in (host, boss, stranger):
            await client.aclose()


async def test_editing_customer_details_is_checked_logged_and_searchable(
    app: Starlette, acme: Seeded, clock: ManualClock
) -> None:
    record = await make_record(app, acme, "host@acme.example", "ご提案", BASE)
    host = await signed_in(app, "host@acme.example")
    other_host = await signed_in(app, "host2@acme.example")
    boss = await signed_in(app, "boss@acme.example")
    try:
        token = csrf_from((await host.get(f"/records/{record.id}")).text)
        form = {
            "csrf_token": token,
            "guest_name": "鈴木 花子",
            "guest_reading": "すずき はなこ",
            "guest_company": "つなぐ商事",
            "guest_phone": "090-1234-5678",
            "notes": "試乗を希望\r\n来月再訪",
            "tags": "展示会、 #紹介, 展示会",
        }
        bad = await host.post(f"/records/{record.id}/guest", data={**form, "guest_phone": "call me"})
        assert bad.status_code == 400 and "電話番号は数字" in bad.text
        too_long = await host.post(f"/records/{record.id}/guest", data={**form, "guest_name": "あ" * 101})
        assert too_long.status_code == 400 and "「お客さま名」は100文字以内" in too_long.text
        saved = await host.post(f"/records/{record.id}/guest", data=form)
        assert saved.status_code == 303
        page = (await host.get(saved.headers["location"])).text
        assert "商談先情報を保存しました。" in page and "つなぐ商事" in page
        refused = await other_host.post(f"/records/{record.id}/guest", data={**form, "csrf_token": ""})
        assert refused.status_code == 403  # no CSRF token: refused before anything else
        other_token = csrf_from((await other_host.get("/records")).text)
        hidden = await other_host.post(
            f"/records/{record.id}/guest", data={**form, "csrf_token": other_token}
        )
        assert hidden.status_code == 404
        clock.advance(3600)
        boss_token = csrf_from((await boss.get(f"/records/{record.id}")).text)
        await boss.post(f"/records/{record.id}/guest", data={**form, "csrf_token": boss_token, "notes": "済"})
        async with services(app).sessions() as db:
            edits = list(await db.scalars(select(RecordEdit).order_by(RecordEdit.id)))
            stored = await db.get(MeetingRecord, record.id)
        by_field = {(e.editor_name, e.field): e for e in edits}
        assert by_field[("host", "tags")].new == "展示会, 紹介"  # split, #-less, once each
        assert by_field[("host", "notes")].new == "試乗を希望\n来月再訪"
        assert by_field[("boss", "notes")].old == "試乗を希望\n来月再訪"
        assert by_field[("boss", "notes")].new == "済"
        assert {e.field for e in edits if e.editor_name == "boss"} == {"notes"}  # only what changed
        assert stored is not None and stored.guest_phone == "090-1234-5678"
        found = (await boss.get("/records?q=" + "つなぐ")).text
        assert record.connect_id in found and "1件" in found
        assert record.connect_id in (await boss.get("/records?q=09012345678")).text
        assert record.connect_id in (await boss.get("/records?tag=紹介")).text
        page = (await boss.get(f"/records/{record.id}")).text
        assert "商談先情報の変更履歴" in page and "済" in page
    finally:
        for client in (host, other_host, boss):
            await client.aclose()


async def test_one_meetings_page(app: Starlette, acme: Seeded) -> None:
    # A real start: the guest agrees on the org's page and issues a number; the host redeems it.
    guest = make_client(app)
    host = await signed_in(app, "host@acme.example")
    boss = await signed_in(app, "boss@acme.example")
    other_host = await signed_in(app, "host2@acme.example")
    try:
        token = csrf_from((await guest.get("/g/acme")).text)
        headers = {"X-CSRF-Token": token, "Accept": "application/json"}
        number = (await guest.post("/api/numbers", json={"org": "acme"}, headers=headers)).json()["number"]
        host_token = csrf_from((await host.get("/host")).text)
        host_headers = {"X-CSRF-Token": host_token, "Accept": "application/json"}
        created = await host.post("/api/rooms", json={"number": number}, headers=host_headers)
        room_id = created.json()["room_id"]
        async with services(app).sessions() as db:
            record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
            assert record is not None
        # What happened in the call, stored the way the room stores it.
        store = DatabaseRoomStore(services(app).sessions, lambda *_: None)  # type: ignore[arg-type]
        memo = SharedMemo()
        at = record.started_at.timestamp()
        rows = [
            MemoRow(room_id, memo.insert(0, "お見積もりの件"), "host", at + 10),
            MemoRow(room_id, memo.insert(len("お見積もりの件"), "\n来週までにご回答"), "guest", at + 40),
        ]
        await store.memo_updated(rows)
        await store.memo_final(room_id, memo.text())
        async with services(app).sessions.begin() as db:
            document = Document(
                org_id=acme.org_id, owner_id=acme.users["host@acme.example"], name="会社案内.pdf",
                status=DocumentStatus.READY, pages=3, rendered=3,
            )  # fmt: skip
            db.add(document)
            await db.flush()
            start = record.started_at.replace(tzinfo=UTC)
            await record_page_shown(db, room_id, document.id, 1, start + timedelta(seconds=5))
            await record_page_shown(db, room_id, document.id, 2, start + timedelta(seconds=65))
            await record_page_shown(db, room_id, None, 0, start + timedelta(seconds=95))
            file = RoomFile(
                room_id=room_id, org_id=acme.org_id, sender="guest", name="要望書.txt", size=6, sha256=""
            )
            db.add(file)
            await db.flush()
            await end_record(db, room_id, start + timedelta(minutes=3))
        storage = services(app).storage
        await storage.put(RoomFileStorage(storage).key(acme.org_id, room_id, file.id), "要望".encode())

        page = (await boss.get(f"/records/{record.id}")).text
        line = r'<span class="memo-line-text">(.*?)</span>\s*<span class="memo-line-meta[^>]*>(.*?)<'
        lines = re.findall(line, page)
        assert [(text, who.split(" ·")[0]) for text, who in lines] == [
            ("お見積もりの件", "担当者"),
            ("来週までにご回答", "お客さま"),
        ]
        assert "利用規約・個人情報の取扱い・プライバシーポリシーに同意" in page  # the timeline
        assert "お客さまの同意事項" in page and "本サービスは、お電話をしながら" in page  # what was agreed
        # The dwell chart: page 1 for 60 s, page 2 for 30 s, page 3 never.
        chart = re.search(r'<figure class="dwell" data-document="\d+">(.*?)</figure>', page, re.S)
        assert chart is not None and "会社案内.pdf" in chart.group(1)
        values = re.findall(r'<g data-label="([^"]+)" data-value="([^"]+)">', chart.group(1))
        assert values == [("1ページ", "60"), ("2ページ", "30"), ("3ページ", "0")]
        assert "<svg" in chart.group(1) and 'role="img"' in chart.group(1)
        download = await boss.get(f"/records/{record.id}/files/{file.id}")
        assert download.status_code == 200 and download.content == "要望".encode()
        assert "attachment" in download.headers["content-disposition"]
        assert (await host.get(f"/records/{record.id}/files/{file.id}")).status_code == 200
        assert (await other_host.get(f"/records/{record.id}/files/{file.id}")).status_code == 404
        assert (await other_host.get(f"/records/{record.id}")).status_code == 404
        listing = (await boss.get("/records?q=見積")).text
        assert record.connect_id in listing and "会社案内.pdf" in listing
        async with services(app).sessions() as db:
            kept = await db.scalar(select(MemoUpdate.author).where(MemoUpdate.room_id == room_id).limit(1))
        assert kept == "host"
    finally:
        for client in (guest, host, boss, other_host):
            await client.aclose()
