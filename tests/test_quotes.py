"""Quotes over HTTP: items typed and imported (.xlsx made here with openpyxl, CSV), every import error
named by row and column with nothing imported, export → edit → import keeping ids, the worst files (over
10 MB, not a zip, a zip bomb, too many rows), sending (the deal to 見積提示, the link by the customer's
channel), accepting some items with a typed signature, two confirmations at once (exactly one kept), frozen
once answered, and the clear page of an expired (injected clock, 21 days) or withdrawn link."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from datetime import UTC, datetime

import httpx
import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from starlette.applications import Starlette

from core.clock import ManualClock
from deals import pipeline
from deals.models import Customer, Deal, DealStatus, OutboxMessage
from deals.quote_models import Quote, QuoteItem, QuoteNotice, QuoteState
from store.models import Role
from tests.conftest import make_client
from tests.helpers import Seeded, csrf_from, seed_org, sign_in
from web.services import services

PEOPLE = {"host@acme.example": Role.HOST, "boss@acme.example": Role.MANAGER, "admin@acme.example": Role.ADMIN}
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ITEMS = [("ソファ", 1, 30000, "A", ""), ("テーブル", 2, 12000, "B", "傷あり"), ("椅子", 4, 5000, "", "")]


@pytest.fixture
async def acme(app: Starlette) -> Seeded:
    return await seed_org(app, "acme", PEOPLE)


async def client_of(app: Starlette, email: str | None = None) -> httpx.AsyncClient:
    client = make_client(app)
    if email:
        assert (await sign_in(client, email)).status_code == 303
    return client


async def make_deal(app: Starlette, seeded: Seeded, **customer: str) -> int:
    async with services(app).sessions.begin() as db:
        made = Customer(
            org_id=seeded.org_id, owner_id=seeded.users["host@acme.example"], name="鈴木 花子", **customer
        )
        db.add(made)
        await db.flush()
        deal = await pipeline.open_deal(
            db, seeded.org_id, made.id, seeded.users["host@acme.example"], "買取", NOW
        )
        return deal.id


async def new_quote(host: httpx.AsyncClient, deal_id: int) -> int:
    token = csrf_from((await host.get(f"/deals/{deal_id}")).text)
    made = await host.post(f"/deals/{deal_id}/quotes", data={"csrf_token": token})
    assert made.status_code == 303, made.text
    return int(made.headers["location"].rsplit("/", 1)[1])


async def type_items(
    host: httpx.AsyncClient, quote_id: int, items: list[tuple[str, int, int, str, str]]
) -> None:
    token = csrf_from((await host.get(f"/quotes/{quote_id}")).text)
    fields: dict[str, list[str]] = {
        "id": [],
        "name": [],
        "quantity": [],
        "unit_price": [],
        "grade": [],
        "notes": [],
    }
    for name, quantity, price, grade, notes in items:
        for key, value in zip(fields, ("", name, quantity, price, grade, notes), strict=True):
            fields[key].append(str(value))
    saved = await host.post(f"/quotes/{quote_id}/items", data={**fields, "csrf_token": token})
    assert saved.status_code == 303, saved.text


def sheet(rows: list[list[object]]) -> bytes:
    book = Workbook()
    page = book.active
    assert page is not None
    for row in rows:
        page.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(
    host: httpx.AsyncClient, quote_id: int, data: bytes, name: str = "items.xlsx"
) -> httpx.Response:
    token = csrf_from((await host.get(f"/quotes/{quote_id}")).text)
    return await host.post(
        f"/api/quotes/{quote_id}/import",
        params={"name": name},
        content=data,
        headers={"X-CSRF-Token": token, "Content-Type": "application/octet-stream"},
    )


async def items_of(app: Starlette, quote_id: int) -> list[QuoteItem]:
    async with services(app).sessions() as db:
        rows = await db.scalars(
            select(QuoteItem).where(QuoteItem.quote_id == quote_id).order_by(QuoteItem.position)
        )
        return list(rows)


async def quote_row(app: Starlette, quote_id: int) -> Quote:
    async with services(app).sessions() as db:
        found = await db.get(Quote, quote_id)
        assert found is not None
        return found


async def send(host: httpx.AsyncClient, quote_id: int, **extra: str) -> str:
    token = csrf_from((await host.get(f"/quotes/{quote_id}")).text)
    sent = await host.post(f"/quotes/{quote_id}/send", data={"csrf_token": token, **extra})
    assert sent.status_code == 303, sent.text
    page = (await host.get(f"/quotes/{quote_id}")).text
    found = re.search(r'id="quote-link">[^<]*/q/([\w-]+)<', page)
    assert found, "the host's page shows the customer's link"
    return found.group(1)


async def test_imports_all_or_nothing_with_errors_by_row_and_column(app: Starlette, acme: Seeded) -> None:
    """One app for the import's cases (each test's app costs seconds of migrations)."""
    host = await client_of(app, "host@acme.example")
    try:
        await _import_errors(app, acme, host)
        await _export_edit_import(app, acme, host)
        await _worst_files(app, acme, host)
    finally:
        await host.aclose()


async def _import_errors(app: Starlette, acme: Seeded, host: httpx.AsyncClient) -> None:
    quote_id = await new_quote(host, await make_deal(app, acme))
    await type_items(host, quote_id, ITEMS[:1])
    before = [(i.id, i.name, i.unit_price) for i in await items_of(app, quote_id)]
    rows: list[list[object]] = [["品名", "数量", "単価", "ランク", "備考"]]
    rows += [[f"品物{n}", 1, 1000 + n, "", ""] for n in range(2, 15)]  # sheet rows 2..14
    rows[6][2] = "千円"  # row 7: a bad price
    rows[11][0] = None  # row 12: no name
    refused = await upload(host, quote_id, sheet(rows))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "sheet_errors"
    assert [(r["row"], r["column"]) for r in error["rows"]] == [(7, "C"), (12, "A")]
    assert "整数" in error["rows"][0]["reason"] and "品名" in error["rows"][1]["reason"]
    assert [(i.id, i.name, i.unit_price) for i in await items_of(app, quote_id)] == before

    rows[6][2], rows[11][0] = 1007, "品物12"
    done = await upload(host, quote_id, sheet(rows))
    assert done.status_code == 200 and done.json()["items"] == 13
    csv_body = '品名,数量,単価\r\nペン,3,"1,200"\r\n,2,100\r\n'.encode("cp932")  # Excel's Japanese CSV
    bad_csv = await upload(host, quote_id, csv_body, "items.csv")
    assert [(r["row"], r["column"]) for r in bad_csv.json()["error"]["rows"]] == [(3, "A")]
    assert len(await items_of(app, quote_id)) == 13


async def _export_edit_import(app: Starlette, acme: Seeded, host: httpx.AsyncClient) -> None:
    quote_id = await new_quote(host, await make_deal(app, acme))
    await type_items(host, quote_id, ITEMS)
    ids = [i.id for i in await items_of(app, quote_id)]
    exported = await host.get(f"/quotes/{quote_id}/items.xlsx")
    assert exported.status_code == 200
    book = load_workbook(io.BytesIO(exported.content))
    page = book.worksheets[0]
    assert [c.value for c in page[1]][:4] == ["ID", "品名", "数量", "単価（円）"]
    page["D3"] = 11000  # the second row's price changes
    page.delete_rows(4)  # the third row goes
    page.append([None, "ランプ", 1, 800, "", ""])  # a new row
    out = io.BytesIO()
    book.save(out)
    assert (await upload(host, quote_id, out.getvalue())).status_code == 200
    after = await items_of(app, quote_id)
    assert [(i.id, i.name, i.unit_price) for i in after[:2]] == [
        (ids[0], "ソファ", 30000),
        (ids[1], "テーブル", 11000),
    ]
    assert after[2].name == "ランプ" and after[2].id not in ids and len(after) == 3


async def _worst_files(app: Starlette, acme: Seeded, host: httpx.AsyncClient) -> None:
    quote_id = await new_quote(host, await make_deal(app, acme))
    await type_items(host, quote_id, ITEMS)
    huge = await upload(host, quote_id, b"a" * (10 * 1024 * 1024 + 1), "big.csv")
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "sheet_too_large"
    not_zip = await upload(host, quote_id, b"this is not a zip at all" * 10, "items.xlsx")
    assert not_zip.status_code == 400 and not_zip.json()["error"]["code"] == "sheet_unreadable"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (101 * 1024 * 1024))  # past 100 MB
    assert len(bomb.getvalue()) < 1024 * 1024
    refused = await upload(host, quote_id, bomb.getvalue(), "bomb.xlsx")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "sheet_unreadable"
    too_many = "品名,数量,単価\n" + "".join(f"x{n},1,1\n" for n in range(1001))
    long = await upload(host, quote_id, too_many.encode(), "items.csv")
    assert long.status_code == 400 and long.json()["error"]["code"] == "sheet_too_long"
    assert [i.name for i in await items_of(app, quote_id)] == [i[0] for i in ITEMS]


async def test_quotes_are_answered_once_signed_and_frozen_and_links_close(
    app: Starlette, acme: Seeded, clock: ManualClock
) -> None:
    """One app for the answers' cases (each test's app costs seconds of migrations); the clock moves last."""
    await _accepted_in_part(app, acme)
    await _two_confirmations_at_once(app, acme)
    await _expired_and_withdrawn_links(app, acme, clock)


async def _accepted_in_part(app: Starlette, acme: Seeded) -> None:
    deal_id = await make_deal(app, acme, email="hanako@example.com")
    host, customer = await client_of(app, "host@acme.example"), await client_of(app)
    try:
        quote_id = await new_quote(host, deal_id)
        await type_items(host, quote_id, ITEMS)
        token = await send(host, quote_id)
        async with services(app).sessions() as db:
            deal = await db.get(Deal, deal_id)
            assert deal is not None
            status = await db.get(DealStatus, deal.status_id)
            link = await db.scalar(select(OutboxMessage).where(OutboxMessage.deal_id == deal_id))
        assert status is not None and status.name == "見積提示"
        assert link is not None and link.channel == "email" and link.to == "hanako@example.com"
        assert f"/q/{token}" in link.body

        page = await customer.get(f"/q/{token}")
        assert page.status_code == 200 and "ソファ" in page.text
        ids = [i.id for i in await items_of(app, quote_id)]
        version = re.search(r'name="version" value="(\d+)"', page.text)
        assert version
        form = {
            "csrf_token": csrf_from(page.text),
            "version": version.group(1),
            "item": [str(ids[0]), str(ids[2])],
            "choice": "accept",
            "name": "鈴木 花子",
        }
        # The host revises the quote after the customer opened it: the old page's answer is refused.
        items_form = (await host.get(f"/quotes/{quote_id}")).text
        fields = dict(
            re.findall(r'name="(id|name|quantity|unit_price|grade|notes)" value="([^"]*)"', items_form)
        )
        assert fields  # the page carries the items' values
        revised = await host.post(
            f"/quotes/{quote_id}/items",
            data={
                "csrf_token": csrf_from(items_form),
                **{k: re.findall(rf'name="{k}" value="([^"]*)"', items_form) for k in fields},
            },
        )
        assert revised.status_code == 303
        stale = await customer.post(f"/q/{token}/answer", data=form)
        assert stale.status_code == 409 and "変更されました" in stale.text
        page = await customer.get(f"/q/{token}")
        form["version"] = re.findall(r'name="version" value="(\d+)"', page.text)[0]
        answered = await customer.post(
            f"/q/{token}/answer",
            data=form,
            headers={"User-Agent": "PhoneBrowser/1.0", "Host": "phish.example"},  # the customer's Host
        )
        assert answered.status_code == 303
        quote = await quote_row(app, quote_id)
        assert quote.state == QuoteState.ACCEPTED and quote.accepted_total == (30000 + 20000) * 110 // 100
        assert (quote.signer_name, quote.signer_agent) == (
            "鈴木 花子",
            "PhoneBrowser/1.0",
        ) and quote.signer_ip
        assert [i.accepted for i in await items_of(app, quote_id)] == [True, False, True]
        deal_page = (await host.get(f"/deals/{deal_id}")).text
        assert "55,000円" in deal_page and "鈴木 花子" in deal_page and "成約" in deal_page
        notices = (await host.get("/quotes")).text
        assert 'data-event="accepted"' in notices and "55,000" in notices
        async with services(app).sessions() as db:
            to_host = await db.scalar(select(OutboxMessage).where(OutboxMessage.to == "host@acme.example"))
        assert to_host is not None and "55,000" in to_host.body
        assert "phish.example" not in to_host.body  # the host's link is not built from the customer's request
        assert f"/quotes/{quote_id}" in to_host.body

        token_csrf = csrf_from((await host.get(f"/quotes/{quote_id}")).text)
        for path in (f"/quotes/{quote_id}/withdraw", f"/quotes/{quote_id}/items"):
            frozen = await host.post(
                path, data={"csrf_token": token_csrf, "name": "x", "quantity": "1", "unit_price": "1"}
            )
            assert frozen.status_code == 409, path
        again = await customer.post(f"/q/{token}/answer", data={**form, "choice": "decline"})
        assert again.status_code == 409 and "すでに回答" in again.text
    finally:
        await host.aclose()
        await customer.aclose()


async def _two_confirmations_at_once(app: Starlette, acme: Seeded) -> None:
    host = await client_of(app, "host@acme.example")
    phones = [await client_of(app), await client_of(app)]
    try:
        quote_id = await new_quote(host, await make_deal(app, acme, phone="+819011112222"))
        await type_items(host, quote_id, ITEMS)
        token = await send(host, quote_id)
        pages = [(await phone.get(f"/q/{token}")).text for phone in phones]
        ids = [str(i.id) for i in await items_of(app, quote_id)]
        forms = [
            {
                "csrf_token": csrf_from(text),
                "version": re.findall(r'name="version" value="(\d+)"', text)[0],
                "name": who,
            }
            for text, who in zip(pages, ("甲", "乙"), strict=True)
        ]
        barrier = asyncio.Barrier(2)

        async def confirm(phone: httpx.AsyncClient, form: dict[str, object]) -> httpx.Response:
            await barrier.wait()
            return await phone.post(f"/q/{token}/answer", data=form)

        answers = await asyncio.gather(
            confirm(phones[0], {**forms[0], "choice": "accept", "item": ids}),
            confirm(phones[1], {**forms[1], "choice": "decline"}),
        )
        assert sorted(a.status_code for a in answers) == [303, 409]
        loser = next(a for a in answers if a.status_code == 409)
        assert "すでに回答" in loser.text
        quote = await quote_row(app, quote_id)
        winner = "甲" if answers[0].status_code == 303 else "乙"
        assert quote.signer_name == winner
        assert quote.state == (QuoteState.ACCEPTED if winner == "甲" else QuoteState.DECLINED)
        async with services(app).sessions() as db:
            told = list(await db.scalars(select(QuoteNotice).where(QuoteNotice.quote_id == quote_id)))
        assert len(told) == 1
    finally:
        for client in (host, *phones):
            await client.aclose()


async def _expired_and_withdrawn_links(app: Starlette, acme: Seeded, clock: ManualClock) -> None:
    host, customer = await client_of(app, "host@acme.example"), await client_of(app)
    try:
        admin = await client_of(app, "admin@acme.example")
        settings = await admin.get("/quote-settings")
        saved = await admin.post(
            "/quote-settings",
            data={
                "csrf_token": csrf_from(settings.text),
                "tax_mode": "exclusive",
                "tax_rate": "10",
                "valid_days": "21",
                "negotiation": "off",
                "round_limit": "5",
                "contact": "買取窓口 0120-000-000（平日 10–18時）",
            },
        )
        assert saved.status_code == 303
        await admin.aclose()
        deal_id = await make_deal(app, acme)
        first, second = await new_quote(host, deal_id), await new_quote(host, deal_id)
        for quote_id in (first, second):
            await type_items(host, quote_id, ITEMS[:1])
        expiring, withdrawn = await send(host, first), await send(host, second)
        token = csrf_from((await host.get(f"/quotes/{second}")).text)
        assert (await host.post(f"/quotes/{second}/withdraw", data={"csrf_token": token})).status_code == 303

        gone = await customer.get(f"/q/{withdrawn}")
        assert gone.status_code == 410 and "取り下げ" in gone.text and "0120-000-000" in gone.text
        assert "ソファ" not in gone.text
        assert await send(host, second) == withdrawn  # revised and sent again: the same link opens
        assert (await customer.get(f"/q/{withdrawn}")).status_code == 200
        clock.now += 21 * 86400 - 60
        assert (await customer.get(f"/q/{expiring}")).status_code == 200  # a minute before the 21 days end
        clock.now += 60
        late = await customer.get(f"/q/{expiring}")
        assert late.status_code == 410 and "有効期限" in late.text and "0120-000-000" in late.text
        refused = await customer.post(
            f"/q/{expiring}/answer",
            data={"csrf_token": csrf_from(late.text), "version": "3", "choice": "decline", "name": "x"},
        )
        assert refused.status_code == 409
        assert (await quote_row(app, first)).state == QuoteState.SENT
        assert (await customer.get("/q/no-such-token")).status_code == 404
    finally:
        await host.aclose()
        await customer.aclose()
