"""Customers and deals over HTTP: one customer across meetings started by SMS links to one number (typed
differently), search in any spelling, merge with its preview, the pipeline (defaults, the seed 002 pipeline,
renames and retirements that keep deals, the log), the bulk change of 50 checked deals out of 60 filtered,
the CSV of exactly the filter with survey columns, surveys' limits, and who sees what."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from deals import customers, pipeline, surveys
from deals.models import Customer, CustomerMeeting, Deal, DealLog, DealStatus, Survey
from store.models import Role
from tests.conftest import make_client
from tests.helpers import Seeded, csrf_from, seed_org, sign_in
from tests.test_links import post
from tests.test_records import make_record
from web.services import services

PEOPLE = {
    "host@acme.example": Role.HOST,
    "host2@acme.example": Role.HOST,
    "boss@acme.example": Role.MANAGER,
    "admin@acme.example": Role.ADMIN,
}
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def acme(app: Starlette) -> Seeded:
    return await seed_org(app, "acme", PEOPLE)


async def client_of(app: Starlette, email: str) -> httpx.AsyncClient:
    client = make_client(app)
    assert (await sign_in(client, email)).status_code == 303
    return client


async def form_post(
    client: httpx.AsyncClient, page: str, path: str, data: Mapping[str, object]
) -> httpx.Response:
    token = csrf_from((await client.get(page)).text)
    return await client.post(path, data={**data, "csrf_token": token})


async def make_customer(app: Starlette, seeded: Seeded, owner: str, **fields: str) -> int:
    async with services(app).sessions.begin() as db:
        customer = Customer(org_id=seeded.org_id, owner_id=seeded.users[owner], **fields)
        db.add(customer)
        await db.flush()
        return customer.id


async def make_deals(app: Starlette, seeded: Seeded, customer_id: int, host: str, n: int) -> list[int]:
    async with services(app).sessions.begin() as db:
        made = [
            await pipeline.open_deal(db, seeded.org_id, customer_id, seeded.users[host], f"deal {i}", NOW)
            for i in range(n)
        ]
        return [deal.id for deal in made]


async def test_meetings_by_sms_links_to_one_number_land_on_one_customer(app: Starlette, acme: Seeded) -> None:
    host = await client_of(app, "host@acme.example")
    try:
        for typed in ("090-1234-5678", "＋８１ ９０ー１２３４ー５６７８"):
            sent = await post(host, "/api/rooms/link", {"phone": typed, "camera": True, "recording": False})
            assert sent.status_code == 201, sent.text
        async with services(app).sessions() as db:
            customers = list(await db.scalars(select(Customer)))
            links = list(await db.scalars(select(CustomerMeeting)))
        assert [c.phone for c in customers] == ["+819012345678"]
        assert {link.customer_id for link in links} == {customers[0].id} and len(links) == 2
        for query in ("09012345678", "+81 90 1234 5678", "090-1234-5678"):
            listed = await host.get("/customers", params={"q": query})
            assert "1件" in listed.text and f'data-customer="{customers[0].id}"' in listed.text, query
        page = (await host.get(f"/customers/{customers[0].id}")).text
        assert page.count("data-record=") == 2
    finally:
        await host.aclose()


async def test_customers_are_searched_edited_and_merged_with_a_preview(app: Starlette, acme: Seeded) -> None:
    first = await make_customer(app, acme, "host@acme.example", name="鈴木 花子", reading="すずき はなこ")
    second = await make_customer(app, acme, "host@acme.example", phone="+819011112222", email="h@example.com")
    await make_deals(app, acme, second, "host@acme.example", 2)
    host = await client_of(app, "host@acme.example")
    try:
        assert f'data-customer="{first}"' in (await host.get("/customers?q=すずき")).text
        assert f'data-customer="{second}"' in (await host.get("/customers?q=090 1111 2222")).text
        assert f'data-customer="{second}"' in (await host.get("/customers?q=H@EXAMPLE")).text
        assert f'data-customer="{first}"' not in (await host.get("/customers?q=090-1111-2222")).text
        bad = await form_post(
            host, f"/customers/{first}", f"/customers/{first}", {"name": "x", "phone": "call"}
        )
        assert bad.status_code == 400 and "電話番号" in bad.text
        preview = await host.get(f"/customers/{first}/merge", params={"other": second})
        assert preview.status_code == 200
        assert (
            "移動する案件: 2" in preview.text
            and "移動する商談: 0" in preview.text
            and "+819011112222" in preview.text
        )
        async with services(app).sessions() as db:
            assert await db.get(Customer, second) is not None  # a preview changes nothing
        done = await form_post(host, f"/customers/{first}", f"/customers/{first}/merge", {"other": second})
        assert done.status_code == 303
        async with services(app).sessions() as db:
            assert await db.get(Customer, second) is None
            kept = await db.get(Customer, first)
            moved = await db.scalar(select(func.count()).select_from(Deal).where(Deal.customer_id == first))
        assert kept is not None and kept.phone == "+819011112222" and kept.name == "鈴木 花子" and moved == 2
    finally:
        await host.aclose()


async def test_the_seed_pipeline_is_expressible_and_renames_and_retirements_keep_deals(
    app: Starlette, acme: Seeded
) -> None:
    seed = [
        "申込受付中",
        "申込確定",
        "着荷済み",
        "査定中",
        "査定完了",
        "査定承認済み",
        "買取完了",
        "支払い済み",
        "キャンセル",
    ]
    async with services(app).sessions.begin() as db:
        defaults = await pipeline.statuses(db, acme.org_id)
        assert [s.name for s in defaults] == ["商談中", "見積提示", "成約", "失注", "保留"]
        made = [await pipeline.add_status(db, acme.org_id, name) for name in seed]
        for old in defaults:
            old.retired = True
        await pipeline.reorder(db, acme.org_id, [s.id for s in made])
    admin = await client_of(app, "admin@acme.example")
    try:
        customer = await make_customer(app, acme, "host@acme.example", name="買取 太郎")
        (deal,) = await make_deals(app, acme, customer, "host@acme.example", 1)
        async with services(app).sessions() as db:
            active = await pipeline.statuses(db, acme.org_id, with_retired=False)
            assert [s.name for s in active] == seed
            assert (await db.get(Deal, deal)).status_id == made[0].id  # type: ignore[union-attr]
        page = f"/deals/{deal}"
        for status in made[1:3]:
            assert (await form_post(admin, page, f"{page}/status", {"status": status.id})).status_code == 303
        renamed = await form_post(
            admin,
            "/deal-settings",
            f"/deal-settings/statuses/{made[2].id}",
            {"name": "着荷確認済み", "retired": "1"},
        )
        assert renamed.status_code == 303
        shown = (await admin.get(page)).text
        assert 'id="deal-status">着荷確認済み<' in shown  # a retired status keeps its deals
        refused = await form_post(admin, page, f"{page}/status", {"status": made[2].id})
        assert refused.status_code == 400
        async with services(app).sessions() as db:
            log = list(await db.scalars(select(DealLog).order_by(DealLog.id)))
        assert [(e.from_status, e.to_status, e.user_name) for e in log] == [
            ("申込受付中", "申込確定", "admin"),
            ("申込確定", "着荷済み", "admin"),
        ]
        assert "申込確定 → 着荷済み" in shown
    finally:
        await admin.aclose()


async def test_bulk_change_of_50_checked_out_of_60_filtered_and_the_csv_of_the_filter(
    app: Starlette, acme: Seeded
) -> None:
    mine = await make_customer(app, acme, "host@acme.example", name="山田 一郎", company="山田商店")
    other = await make_customer(app, acme, "host2@acme.example", name="佐藤 次郎")
    ids = await make_deals(app, acme, mine, "host@acme.example", 60)
    others = await make_deals(app, acme, other, "host2@acme.example", 5)
    async with services(app).sessions.begin() as db:
        statuses = {s.name: s for s in await pipeline.statuses(db, acme.org_id)}
        for deal_id in ids[:3]:
            await surveys.answer(db, acme.org_id, deal_id, Survey.QUOTE, ["価格", "納期"], NOW)
            await surveys.answer(db, acme.org_id, deal_id, Survey.DESIRE, ["試乗希望"], NOW)
    boss = await client_of(app, "boss@acme.example")
    try:
        listed = await boss.get("/deals", params={"customer": "山田"})
        assert "60件" in listed.text
        checked, unchecked = ids[:50], ids[50:]
        target = statuses["見積提示"]
        body = {"deal": checked, "status": target.id, "back": "customer=山田"}
        confirm = await form_post(boss, "/deals", "/deals/bulk-status", body)
        assert confirm.status_code == 200 and "50件を「見積提示」に変更" in confirm.text
        async with services(app).sessions() as db:
            assert not await db.scalar(select(func.count()).select_from(DealLog))  # nothing before confirming
        huge = await form_post(boss, "/deals", "/deals/bulk-status", {**body, "deal": list(range(1, 502))})
        assert huge.status_code == 400 and "500件まで" in huge.text
        done = await form_post(boss, "/deals", "/deals/bulk-status", {**body, "confirm": "1"})
        assert done.status_code == 303
        async with services(app).sessions() as db:
            status_of = dict((await db.execute(select(Deal.id, Deal.status_id))).all())
        assert {status_of[i] for i in checked} == {target.id}
        assert {status_of[i] for i in unchecked + others} == {statuses["商談中"].id}

        exported = await boss.get("/deals.csv", params={"customer": "山田", "status": target.id})
        assert exported.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(exported.content[3:].decode("utf-8"))))
        header, rows = rows[0], rows[1:]
        assert len(rows) == 50 and {row[1] for row in rows} == {"見積提示"}
        assert header[-4:] == ["見積アンケート", "成約アンケート", "終了アンケート", "希望"]
        answered = [row for row in rows if row[-4]]
        assert len(answered) == 3 and answered[0][-4] == "価格 / 納期" and answered[0][-1] == "試乗希望"
        desire = await boss.get("/deals.csv", params={"desire": "試乗希望"})
        assert len(desire.content.decode("utf-8-sig").splitlines()) == 1 + 3
    finally:
        await boss.aclose()


async def test_surveys_take_only_the_org_choices_within_their_limits(app: Starlette, acme: Seeded) -> None:
    customer = await make_customer(app, acme, "host@acme.example", name="試乗 希望")
    (deal,) = await make_deals(app, acme, customer, "host@acme.example", 1)
    async with services(app).sessions() as db:
        quote = next(s for s in await pipeline.statuses(db, acme.org_id) if s.survey == Survey.QUOTE)
    host = await client_of(app, "host@acme.example")
    try:
        page = f"/deals/{deal}"
        four = {"status": quote.id, "survey_quote": ["価格", "納期", "担当者の対応", "店舗の近さ"]}
        assert (await form_post(host, page, f"{page}/status", four)).status_code == 400
        unknown = {"status": quote.id, "survey_quote": ["<script>"]}
        assert (await form_post(host, page, f"{page}/status", unknown)).status_code == 400
        async with services(app).sessions() as db:
            unchanged = await db.get(Deal, deal)
            assert (
                unchanged is not None and unchanged.status_id != quote.id
            )  # a refused survey changes nothing
        good = {"status": quote.id, "survey_quote": ["価格", "納期"], "survey_desire": ["試乗希望"]}
        assert (await form_post(host, page, f"{page}/status", good)).status_code == 303
        shown = (await host.get(f"/customers/{customer}")).text
        assert "価格、納期" in shown and "試乗希望" in shown
    finally:
        await host.aclose()


async def test_hosts_see_their_own_customers_and_deals_unless_the_org_shares_them(
    app: Starlette, acme: Seeded
) -> None:
    other_org = await seed_org(app, "other", {"admin@other.example": Role.ADMIN})
    customer = await make_customer(app, acme, "host@acme.example", name="秘密 顧客")
    (deal,) = await make_deals(app, acme, customer, "host@acme.example", 1)
    host2 = await client_of(app, "host2@acme.example")
    stranger = await client_of(app, "admin@other.example")
    boss = await client_of(app, "boss@acme.example")
    try:
        assert other_org.org_id != acme.org_id
        for client in (host2, stranger):
            assert (await client.get(f"/customers/{customer}")).status_code == 404
            assert (await client.get(f"/deals/{deal}")).status_code == 404
            assert "秘密" not in (await client.get("/customers")).text
            assert "秘密" not in (await client.get("/deals.csv")).content.decode("utf-8-sig")
        assert (await boss.get(f"/deals/{deal}")).status_code == 200
        theirs = await make_record(app, acme, "host2@acme.example", "host2の秘密メモ", NOW)
        async with services(app).sessions.begin() as db:
            await customers.attach_meeting(db, theirs.id, customer)
        host = await client_of(app, "host@acme.example")
        assert "host2の秘密メモ" not in (await host.get(f"/customers/{customer}")).text  # not its meeting
        await host.aclose()
        assert "host2の秘密メモ" in (await boss.get(f"/customers/{customer}")).text
        admin = await client_of(app, "admin@acme.example")
        assert (
            await form_post(admin, "/deal-settings", "/deal-settings/share", {"share": "1"})
        ).status_code == 303
        await admin.aclose()
        assert (await host2.get(f"/customers/{customer}")).status_code == 200
        assert (await host2.get(f"/deals/{deal}")).status_code == 200
        assert (await stranger.get(f"/deals/{deal}")).status_code == 404
        async with services(app).sessions() as db:
            statuses = await db.scalars(select(DealStatus.org_id).distinct())
            assert set(statuses) <= {acme.org_id, other_org.org_id}
    finally:
        for client in (host2, stranger, boss):
            await client.aclose()


async def test_a_meeting_by_connect_number_is_tied_to_a_customer_after_the_call(
    app: Starlette, acme: Seeded
) -> None:

    known = await make_customer(app, acme, "host@acme.example", name="既存 顧客", phone="+819055556666")
    record = await make_record(app, acme, "host@acme.example", "ご提案", NOW)
    host = await client_of(app, "host@acme.example")
    try:
        page = f"/records/{record.id}"
        bad = await form_post(host, page, f"{page}/customer", {"phone": "なし"})
        assert bad.status_code == 400
        tied = await form_post(host, page, f"{page}/customer", {"phone": "０９０ー５５５５ー６６６６"})
        assert tied.status_code == 303 and tied.headers["location"] == f"/customers/{known}"
        assert f'href="/customers/{known}"' in (await host.get(page)).text
        assert f'data-record="{record.id}"' in (await host.get(f"/customers/{known}")).text
    finally:
        await host.aclose()


async def test_links_to_one_new_number_at_once_make_one_customer_and_a_taken_number_is_refused(
    app: Starlette, acme: Seeded
) -> None:
    host = await client_of(app, "host@acme.example")
    try:
        token = csrf_from((await host.get("/host")).text)
        barrier = asyncio.Event()

        async def start(typed: str) -> int:
            await barrier.wait()
            body = {"phone": typed, "camera": True, "recording": False}
            headers = {"X-CSRF-Token": token, "Accept": "application/json"}
            return (await host.post("/api/rooms/link", json=body, headers=headers)).status_code

        racing = [asyncio.create_task(start(t)) for t in ("080-2222-3333", "08022223333", "+81 80 2222 3333")]
        await asyncio.sleep(0)
        barrier.set()
        assert await asyncio.gather(*racing) == [201, 201, 201]
        async with services(app).sessions() as db:
            (customer,) = list(await db.scalars(select(Customer)))
            tied = list(await db.scalars(select(CustomerMeeting.customer_id)))
        assert tied == [customer.id] * 3
        other = await make_customer(app, acme, "host@acme.example", name="別人")
        page = f"/customers/{other}"
        taken = await form_post(host, page, page, {"name": "別人", "phone": "080 2222 3333"})
        assert taken.status_code == 400 and f"お客さま No. {customer.id}" in taken.text
    finally:
        await host.aclose()
