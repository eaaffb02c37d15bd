"""Quote races on SQLite and PostgreSQL, below the pages: four answers to one sent quote at once keep exactly
one (the others learn it was answered), four moves on one negotiation position keep exactly one, and a host's
withdraw or edit read before a customer's answer and written after it is refused."""

from __future__ import annotations

import asyncio
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import InvalidInput, TsunaguError
from deals import negotiation, pipeline, quotes, sheets
from deals.models import Customer
from deals.quote_models import MoveKind, Negotiation, Quote, QuoteMove, QuoteState, Side
from deals.quotes import ItemInput, QuoteAnswered, QuoteFrozen, Signature
from store.models import Role
from web import accounts

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.timeout(120)
async def test_racing_answers_and_moves_keep_exactly_one(
    migrated_sessions: async_sessionmaker[AsyncSession],
) -> None:
    sessions = migrated_sessions
    async with sessions.begin() as db:
        org = await accounts.create_org(db, "acme", "ACME")
        host = await accounts.add_user(db, org, "host@acme.example", "host", Role.HOST, "long-enough-1")
        customer = Customer(org_id=org.id, owner_id=host.id, name="C")
        db.add(customer)
        await db.flush()
        deal = await pipeline.open_deal(db, org.id, customer.id, host.id, "", NOW)
        made = []
        for _ in range(3):
            quote = await quotes.new_quote(db, deal, host.id, NOW)
            quote.negotiation = Negotiation.AUTOMATIC
            await quotes.replace_items(db, quote, [ItemInput(None, "x", 1, 1000)])
            await quotes.send(db, quote, NOW, 21)
            made.append((quote.id, quote.version))
    (answered_id, answered_version), (negotiated_id, negotiated_version), (signed_id, signed_version) = made
    later = NOW + timedelta(minutes=1)

    barrier = asyncio.Barrier(4)

    async def answer(n: int) -> str:
        await barrier.wait()
        try:
            async with sessions.begin() as db:
                signature = Signature.typed(f"signer {n}", "127.0.0.1", "test")
                await quotes.claim_answer(
                    db, answered_id, answered_version, QuoteState.DECLINED, None, signature, later
                )
            return "kept"
        except QuoteAnswered:
            return "answered"

    results = await asyncio.wait_for(asyncio.gather(*(answer(n) for n in range(4))), 60)
    assert sorted(results) == ["answered", "answered", "answered", "kept"]

    moves = asyncio.Barrier(4)

    async def counter(n: int) -> str:
        await moves.wait()
        try:
            async with sessions.begin() as db:
                await negotiation.play(
                    db,
                    negotiated_id,
                    negotiated_version,
                    Side.CUSTOMER,
                    MoveKind.COUNTER,
                    900 - n,
                    None,
                    later,
                )
            return "kept"
        except TsunaguError as refused:
            return refused.code

    results = await asyncio.wait_for(asyncio.gather(*(counter(n) for n in range(4))), 60)
    assert sorted(results) == ["kept", "quote_answered", "quote_answered", "quote_answered"]
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(QuoteMove)) == 1
        kept = await db.get(Quote, negotiated_id)
        assert kept is not None and kept.state == QuoteState.NEGOTIATING

    # The host's withdraw, read before the customer's signed answer and written after it: refused, and
    # the answer stays whole (it was silently overwritten: a withdrawn quote carrying a signature).
    for host_action in ("withdraw", "replace_items"):
        if host_action == "replace_items":
            async with sessions.begin() as db:
                quote = await quotes.new_quote(db, deal, host.id, NOW)
                await quotes.replace_items(db, quote, [ItemInput(None, "y", 1, 2000)])
                await quotes.send(db, quote, NOW, 21)
                signed_id, signed_version = quote.id, quote.version
        async with sessions() as host_db:
            stale = await host_db.get(Quote, signed_id)
            assert stale is not None and stale.state == QuoteState.SENT
            async with sessions.begin() as db:
                signature = Signature.typed("山田 太郎", "127.0.0.1", "test")
                await quotes.claim_answer(
                    db, signed_id, signed_version, QuoteState.ACCEPTED, 1000, signature, later
                )
            with pytest.raises(Exception) as refused:
                if host_action == "withdraw":
                    await quotes.withdraw(host_db, stale)
                else:
                    await quotes.replace_items(host_db, stale, [ItemInput(None, "z", 9, 9)])
                await host_db.commit()
            # PostgreSQL reads the new row and refuses it; SQLite refuses the stale snapshot's write.
            assert isinstance(refused.value, QuoteFrozen) or "locked" in str(refused.value), refused.value
        async with sessions() as db:
            kept = await db.get(Quote, signed_id)
            assert kept is not None and kept.state == QuoteState.ACCEPTED and kept.signer_name == "山田 太郎"
            assert [item.name for item in await quotes.items_of(db, signed_id)] in (["x"], ["y"])


def _sheet_of_one_shared_string(text: str, rows: int, columns: int) -> bytes:
    """An .xlsx whose every cell names shared string 0 (openpyxl itself writes strings inline)."""
    from openpyxl import Workbook

    plain = io.BytesIO()
    Workbook().save(plain)
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    letters = [chr(ord("A") + c) for c in range(columns)]
    data = "".join(
        f'<row r="{r}">' + "".join(f'<c r="{x}{r}" t="s"><v>0</v></c>' for x in letters) + "</row>"
        for r in range(1, rows + 1)
    )
    parts = {
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{data}</sheetData></worksheet>',
        "xl/sharedStrings.xml": f'<sst xmlns="{main}" count="1" uniqueCount="1"><si><t>{text}</t></si></sst>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as sheet:
        for info in source.infolist():
            body = source.read(info).decode()
            if info.filename == "[Content_Types].xml":
                body = body.replace(
                    "</Types>",
                    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml" /></Types>',
                )
            elif info.filename == "xl/_rels/workbook.xml.rels":
                body = body.replace(
                    "</Relationships>",
                    '<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                    'sharedStrings" Target="sharedStrings.xml" Id="rId9" /></Relationships>',
                )
            sheet.writestr(info.filename, parts.pop(info.filename, body))
        for name, body in parts.items():
            sheet.writestr(name, body)
    return out.getvalue()


async def test_a_small_sheet_of_one_long_shared_string_answers_small() -> None:
    # 20 columns × 1,001 rows all naming one 2,500-character shared string: a file of some tens of KB that
    # used to come back from the sheet worker as 150 MB of JSON, parsed on the event loop.
    data = _sheet_of_one_shared_string("長" * 2500, rows=1001, columns=20)
    assert len(data) < 100_000
    rows = await sheets.xlsx_rows(data)
    assert len(rows) == 1001
    assert all(len(str(cell)) == 1001 for _, cells in rows for cell in cells)
    with pytest.raises(InvalidInput):  # still told: too many rows, names too long
        sheets.check_rows(rows, set())
