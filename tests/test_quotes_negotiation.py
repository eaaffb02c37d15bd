"""Negotiation over HTTP (seeds 000/001): counters alternate up to the round limit, a counter past it is
refused and the last decline ends it as 不成立 for both; 有人 mode holds the host's move until a manager
approves it (the customer's moves are never held); every move is told by SMS to the number given for this
negotiation (the outbox shows each); two answers to the same move at once: exactly one is kept."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from deals.models import Deal, DealStatus, OutboxMessage
from deals.quote_models import MoveState, QuoteMove, QuoteNotice, QuoteState
from tests.helpers import Seeded, csrf_from
from tests.test_quotes import ITEMS, acme, client_of, make_deal, new_quote, quote_row, send, type_items
from web.services import services

__all__ = ["acme"]  # the fixture, shared
CUSTOMER_SMS, HOST_SMS, STAFFED_SMS = "+819011112222", "+819033334444", "+819055556666"


async def set_negotiation(app: Starlette, mode: str, rounds: int) -> None:
    admin = await client_of(app, "admin@acme.example")
    try:
        token = csrf_from((await admin.get("/quote-settings")).text)
        form = {
            "tax_mode": "none",
            "tax_rate": "10",
            "valid_days": "21",
            "negotiation": mode,
            "round_limit": str(rounds),
        }
        assert (await admin.post("/quote-settings", data={**form, "csrf_token": token})).status_code == 303
    finally:
        await admin.aclose()


def version_of(page: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found, "the page offers a move"
    return found.group(1)


async def customer_moves(
    browser: httpx.AsyncClient, token: str, kind: str, amount: str = "", **extra: str
) -> httpx.Response:
    page = (await browser.get(f"/q/{token}")).text
    form = {
        "csrf_token": csrf_from(page),
        "version": version_of(page),
        "kind": kind,
        "amount": amount,
        **extra,
    }
    return await browser.post(f"/q/{token}/moves", data=form)


async def host_moves(host: httpx.AsyncClient, quote_id: int, kind: str, amount: str = "") -> httpx.Response:
    page = (await host.get(f"/quotes/{quote_id}")).text
    form = {"csrf_token": csrf_from(page), "version": version_of(page), "kind": kind, "amount": amount}
    return await host.post(f"/quotes/{quote_id}/moves", data=form)


async def sms_to(app: Starlette, number: str) -> list[str]:
    async with services(app).sessions() as db:
        rows = await db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.to == number, OutboxMessage.channel == "sms")
            .order_by(OutboxMessage.id)
        )
        return [row.body for row in rows]


async def deal_status(app: Starlette, deal_id: int) -> str:
    async with services(app).sessions() as db:
        deal = await db.get(Deal, deal_id)
        assert deal is not None
        status = await db.get(DealStatus, deal.status_id)
        assert status is not None
        return status.name


async def test_negotiation_alternates_within_its_rounds_and_staffed_moves_wait(
    app: Starlette, acme: Seeded
) -> None:
    """One app for both modes (each test's app costs seconds of migrations)."""
    await _round_limit_ends_it_for_both(app, acme)
    await _staffed_mode_holds_the_hosts_move_and_one_answer_wins(app, acme)


async def _round_limit_ends_it_for_both(app: Starlette, acme: Seeded) -> None:
    await set_negotiation(app, "automatic", 5)  # the org's limit; this deal's is 3, chosen when sending
    deal_id = await make_deal(app, acme, email="hanako@example.com")
    host, phone = await client_of(app, "host@acme.example"), await client_of(app)
    try:
        quote_id = await new_quote(host, deal_id)
        await type_items(host, quote_id, ITEMS)  # 30,000 + 24,000 + 20,000 = 74,000, no tax
        token = await send(host, quote_id, host_phone="090-3333-4444", round_limit="3")

        assert (
            await customer_moves(phone, token, "counter", "６０，０００円", phone="090-1111-2222")
        ).status_code == 303
        current = str((await quote_row(app, quote_id)).version)
        csrf = csrf_from((await phone.get(f"/q/{token}")).text)
        form = {"csrf_token": csrf, "version": current, "kind": "counter", "amount": "59000"}
        turn = await phone.post(f"/q/{token}/moves", data=form)
        assert turn.status_code == 409 and "相手側" in turn.text  # not the customer's turn
        assert (await host_moves(host, quote_id, "counter", "70,000")).status_code == 303
        assert (await customer_moves(phone, token, "counter", "65000")).status_code == 303  # round 3 of 3
        page = (await host.get(f"/quotes/{quote_id}")).text
        assert "最後の回です" in page and 'name="amount"' not in page.split('id="host-move"')[1]
        past = await host_moves(host, quote_id, "counter", "68000")
        assert past.status_code == 409 and "最後の回" in past.text
        bad = await host_moves(host, quote_id, "counter", "-5")
        assert bad.status_code == 400
        assert (await host_moves(host, quote_id, "decline")).status_code == 303

        quote = await quote_row(app, quote_id)
        assert quote.state == QuoteState.FAILED and await deal_status(app, deal_id) == "失注"
        customer_texts = await sms_to(app, CUSTOMER_SMS)
        assert len(customer_texts) == 2  # the host's 70,000 and the 不成立
        assert "70,000円" in customer_texts[0] and "不成立" in customer_texts[1]
        assert all(f"/q/{token}" in text for text in customer_texts)
        host_texts = await sms_to(app, HOST_SMS)
        assert len(host_texts) == 3 and "60,000" in host_texts[0] and "65,000" in host_texts[1]
        assert "不成立" in host_texts[2]
        notices = (await host.get("/quotes")).text
        assert notices.count('data-event="countered"') == 2 and 'data-event="failed"' in notices
        closed = (await phone.get(f"/q/{token}")).text
        assert "不成立" in closed and 'id="move-form"' not in closed
        async with services(app).sessions() as db:
            moves = list(
                await db.scalars(
                    select(QuoteMove).where(QuoteMove.quote_id == quote_id).order_by(QuoteMove.seq)
                )
            )
        assert [(m.side.value, m.kind.value, m.amount, m.round) for m in moves] == [
            ("customer", "counter", 60000, 1),
            ("host", "counter", 70000, 2),
            ("customer", "counter", 65000, 3),
            ("host", "decline", None, 3),
        ]
    finally:
        await host.aclose()
        await phone.aclose()


async def _staffed_mode_holds_the_hosts_move_and_one_answer_wins(app: Starlette, acme: Seeded) -> None:
    await set_negotiation(app, "staffed", 5)
    deal_id = await make_deal(app, acme)
    host, boss = await client_of(app, "host@acme.example"), await client_of(app, "boss@acme.example")
    phones = [await client_of(app), await client_of(app)]
    try:
        quote_id = await new_quote(host, deal_id)
        await type_items(host, quote_id, ITEMS)
        token = await send(host, quote_id)
        assert (
            await customer_moves(phones[0], token, "counter", "60000", phone="09055556666")
        ).status_code == 303
        assert (await host_moves(host, quote_id, "counter", "68000")).status_code == 303

        async with services(app).sessions() as db:
            held = await db.scalar(select(QuoteMove).where(QuoteMove.state == MoveState.HELD))
            told = list(await db.scalars(select(QuoteNotice).where(QuoteNotice.event == "held")))
        assert held is not None and held.amount == 68000
        assert {n.user_id for n in told} == {
            acme.users["boss@acme.example"],
            acme.users["admin@acme.example"],
        }
        assert await sms_to(app, STAFFED_SMS) == []  # nothing reaches the customer while it is held
        waiting = (await phones[0].get(f"/q/{token}")).text
        assert "68,000" not in waiting and 'id="waiting"' in waiting
        assert 'id="host-move"' not in (await host.get(f"/quotes/{quote_id}")).text
        approve = f"/quotes/{quote_id}/moves/{held.id}/approve"
        token_host = csrf_from((await host.get(f"/quotes/{quote_id}")).text)
        assert (await host.post(approve, data={"csrf_token": token_host})).status_code == 403
        token_boss = csrf_from((await boss.get(f"/quotes/{quote_id}")).text)
        assert (await boss.post(approve, data={"csrf_token": token_boss})).status_code == 303
        assert (await boss.post(approve, data={"csrf_token": token_boss})).status_code == 409  # approved once
        assert len(texts := await sms_to(app, STAFFED_SMS)) == 1 and "68,000円" in texts[0]

        # The same move answered from two phones at once: one is kept, the other is told it was answered.
        pages = [(await phone.get(f"/q/{token}")).text for phone in phones]
        barrier = asyncio.Barrier(2)

        async def answer(phone: httpx.AsyncClient, page: str, kind: str, amount: str) -> httpx.Response:
            form = {
                "csrf_token": csrf_from(page),
                "version": version_of(page),
                "kind": kind,
                "amount": amount,
            }
            await barrier.wait()
            return await phone.post(f"/q/{token}/moves", data={**form, "name": "鈴木 花子"})

        answers = await asyncio.gather(
            answer(phones[0], pages[0], "accept", ""), answer(phones[1], pages[1], "counter", "64000")
        )
        assert sorted(a.status_code for a in answers) == [303, 409]
        assert "すでに回答" in next(a.text for a in answers if a.status_code == 409)
        quote = await quote_row(app, quote_id)
        async with services(app).sessions() as db:
            count = len(list(await db.scalars(select(QuoteMove).where(QuoteMove.quote_id == quote_id))))
        if answers[0].status_code == 303:  # the acceptance won: 成約 at the host's amount
            assert quote.state == QuoteState.AGREED and quote.accepted_total == 68000
            assert await deal_status(app, deal_id) == "成約" and quote.signer_name == "鈴木 花子"
        else:
            assert quote.state == QuoteState.NEGOTIATING
        assert count == 3
    finally:
        for client in (host, boss, *phones):
            await client.aclose()
