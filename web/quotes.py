"""The host's side of quotes: a deal's new quote, its items typed in or imported (.xlsx / CSV) and exported,
sending it by an expiring link (the deal moves to 見積提示), withdrawing and revising until the customer
answers, the negotiation's moves (held for a manager's approval in 有人 mode) and the in-app notices. Who
sees a quote is who sees its deal (deals.pipeline.get_deal): another org's is 404. The customer's side is
web/quote_page.py; the org's quote settings are web/quote_settings.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput, NotAuthenticated
from deals import negotiation, notices, pipeline, quotes, sheets
from deals.customers import Scope
from deals.models import Customer, Deal, OutboxMessage
from deals.quote_models import (
    ANSWERED,
    MoveKind,
    Negotiation,
    Quote,
    QuoteEvent,
    QuoteNotice,
    QuoteState,
    Side,
    TaxMode,
)
from deals.quotes import ItemInput
from signaling.phone import normalise_phone
from store.models import Org, User
from web.auth import load_user, signed_in
from web.customers import now_of, scope_of
from web.deals import QUOTE_STATES
from web.files import content_disposition
from web.quote_notify import (
    HOST_TEXTS,
    QUOTE_LINK_SUBJECT,
    QUOTE_LINK_TEXT,
    announce,
    customer_link,
    deliver,
    domain_of,
    tell_customer,
)
from web.records import MANAGERS
from web.services import services
from web.templating import render, translator
from web.uploads import chunks, declared_size

STATE_LABELS = QUOTE_STATES
MOVE_LABELS = {
    MoveKind.COUNTER: N_("Offers"),
    MoveKind.ACCEPT: N_("Accepts"),
    MoveKind.DECLINE: N_("Declines"),
    MoveKind.CLOSED: N_("Closed"),
}
TAX_LABELS = {
    TaxMode.EXCLUSIVE: N_("Prices exclude tax (tax added)"),
    TaxMode.INCLUSIVE: N_("Prices include tax"),
    TaxMode.NONE: N_("No tax shown"),
}
NEGOTIATION_LABELS = {
    Negotiation.OFF: N_("No negotiation"),
    Negotiation.AUTOMATIC: N_("Automatic: the customer and the host deal directly"),
    Negotiation.STAFFED: N_("Staffed (有人): a manager approves each of the host's moves"),
}
MAX_ROUNDS = 20
ITEM_FIELDS = ("id", "name", "quantity", "unit_price", "grade", "notes")
SAVED = {
    "saved": N_("The items have been saved."),
    "imported": N_("The items have been imported."),
    "sent": N_("The quote has been sent."),
    "withdrawn": N_("The quote has been withdrawn."),
    "moved": N_("Your answer has been recorded."),
    "held": N_("Your answer waits for a manager's approval."),
    "approved": N_("The move has been approved and sent."),
}


def int_field(value: object) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() and len(text) < 10 else None


async def _quote(request: Request) -> tuple[Quote, Deal]:
    return await quotes.get_quote(request.state.db, scope_of(request), int(request.path_params["quote_id"]))


async def quote_context(db: AsyncSession, quote: Quote) -> dict[str, Any]:
    """What both the host's and the customer's pages show of a quote."""
    items = await quotes.items_of(db, quote.id)
    moves = await negotiation.moves_of(db, quote.id)
    accepted = {i.id for i in items if i.accepted}
    return {
        "quote": quote,
        "items": items,
        "totals": quotes.quote_totals(quote, items),
        "accepted_totals": quotes.quote_totals(quote, items, accepted) if accepted else None,
        "moves": [(m, in_jst(m.at)) for m in moves],
        "position": negotiation.position(quote, moves),
        "state_labels": STATE_LABELS,
        "move_labels": MOVE_LABELS,
        "tax_labels": TAX_LABELS,
        "answered": quote.state in ANSWERED,
        "answered_at": in_jst(quote.answered_at) if quote.answered_at else None,
        "expires_at": in_jst(quote.expires_at) if quote.expires_at else None,
    }


async def _page(request: Request, quote: Quote, deal: Deal, status_code: int = 200, **extra: Any) -> Response:
    db: AsyncSession = request.state.db
    rules = await quotes.settings_of(db, quote.org_id)
    return render(
        request,
        "quote.html",
        status_code=status_code,
        deal=deal,
        customer=await db.get(Customer, deal.customer_id),
        link=customer_link(request, quote),
        valid_days=rules.valid_days,
        negotiation_labels=NEGOTIATION_LABELS,
        saved=SAVED.get(request.query_params.get("done", "")),
        is_manager=request.state.user.role in MANAGERS,
        **(await quote_context(db, quote)),
        **extra,
    )


@signed_in()
async def quote_page(request: Request) -> Response:
    quote, deal = await _quote(request)
    return await _page(request, quote, deal)


@signed_in()
async def new_quote(request: Request) -> Response:
    """A new draft for the deal; ``from`` copies a quote's items (a frozen quote's change is a new quote)."""
    db: AsyncSession = request.state.db
    scope = scope_of(request)
    deal = await pipeline.get_deal(db, scope, int(request.path_params["deal_id"]))
    source = int_field((await request.form()).get("from"))
    made = await quotes.new_quote(db, deal, request.state.user.id, now_of(request))
    if source is not None:
        old, old_deal = await quotes.get_quote(db, scope, source)
        if old_deal.id != deal.id:
            raise InvalidInput()
        lines = [
            ItemInput(None, i.name, i.quantity, i.unit_price, i.grade, i.notes)
            for i in await quotes.items_of(db, old.id)
        ]
        await quotes.replace_items(db, made, lines)
    return RedirectResponse(f"/quotes/{made.id}", status_code=303)


@signed_in()
async def save_items(request: Request) -> Response:
    """The typed lines, checked as a sheet is (line numbers instead of rows): all saved or none."""
    db: AsyncSession = request.state.db
    quote, deal = await _quote(request)
    quotes.editable(quote)
    form = await request.form()
    columns = {name: [str(v) for v in form.getlist(name)] for name in ITEM_FIELDS}
    count = max(len(values) for values in columns.values())
    if count > quotes.MAX_ITEMS + 20:
        raise InvalidInput(sheets.SheetTooLong.message, limit=quotes.MAX_ITEMS)
    rows: list[tuple[int, list[sheets.Cell]]] = [(0, [sheets.HEADINGS[name][0] for name in ITEM_FIELDS])]
    for index in range(count):
        cells: list[sheets.Cell] = [
            columns[name][index] if index < len(columns[name]) else "" for name in ITEM_FIELDS
        ]
        if not any(str(cell).strip() for cell in cells[1:]):
            cells = []  # a line emptied of all it shows is removed, whatever its hidden id
        rows.append((index + 1, cells))
    known = {item.id for item in await quotes.items_of(db, quote.id)}
    try:
        lines = sheets.check_rows(rows, known)
    except sheets.SheetErrors as wrong:
        return await _page(
            request, quote, deal, 400, row_errors=wrong.errors, column_labels=sheets.COLUMN_LABELS
        )
    if not lines:
        raise quotes.NoItems()
    await quotes.replace_items(db, quote, lines)
    return RedirectResponse(f"/quotes/{quote.id}?done=saved", status_code=303)


def _errors_json(request: Request, wrong: sheets.SheetErrors) -> JSONResponse:
    _ = translator(request)
    rows = [
        {
            "row": e.row,
            "column": e.letter,
            "field": _(sheets.COLUMN_LABELS[e.column]),
            "reason": _(e.reason, **e.params),
        }
        for e in wrong.errors
    ]
    error = {"code": wrong.code, "message": _(wrong.message, **wrong.params), "rows": rows}
    return JSONResponse({"error": error}, status_code=400)


async def import_items(request: Request) -> Response:
    """``POST /api/quotes/{id}/import?name=…`` with the .xlsx or CSV as the raw body (at most 10 MB):
    every row checked, nothing imported when any is wrong (the errors name row, column and reason).

    Not wrapped in ``signed_in``: no transaction is held while the body arrives or the worker reads it."""
    quote_id = int(request.path_params["quote_id"])
    async with services(request).sessions() as db:
        user = await load_user(request, db)
        if user is None:
            raise NotAuthenticated()
        scope = Scope.of(user, user.org)
        quote, _deal = await quotes.get_quote(db, scope, quote_id)
        quotes.editable(quote)
        known = {item.id for item in await quotes.items_of(db, quote.id)}
    too_large = sheets.SheetTooLarge()
    declared = declared_size(request, sheets.MAX_BYTES, too_large, sheets.SheetUnreadable())
    body = bytearray()
    with services(request).uploads.hold(f"user:{user.id}"):
        try:
            async for chunk in chunks(request, declared, too_large):
                body.extend(chunk)
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            lines = await sheets.read(bytes(body), request.query_params.get("name", ""), known)
        except sheets.SheetErrors as wrong:
            return _errors_json(request, wrong)
    async with services(request).sessions.begin() as db:
        quote, _deal = await quotes.get_quote(db, scope, quote_id)
        await quotes.replace_items(db, quote, lines)
        version = quote.version
    return JSONResponse({"items": len(lines), "version": version})


@signed_in()
async def export_items(request: Request) -> Response:
    quote, deal = await _quote(request)
    data = sheets.export(await quotes.items_of(request.state.db, quote.id), quote.title)
    name = f"quote_{quote.id}.xlsx"
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": content_disposition(name), "Cache-Control": "private, no-store"},
    )


@signed_in()
async def send_quote(request: Request) -> Response:
    """Open the link, move the deal to 見積提示, and send the customer the link by its channel (the
    status's own template when it has one, with ``{link}`` the quote's)."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    quote, deal = await _quote(request)
    form = await request.form()
    rules = await quotes.settings_of(db, quote.org_id)
    days = int_field(form.get("valid_days")) or rules.valid_days
    rounds = int_field(form.get("round_limit"))
    if rounds is not None and quote.negotiation != Negotiation.OFF:  # this deal's own limit (3 for some)
        if not 1 <= rounds <= MAX_ROUNDS:
            raise InvalidInput(N_("The rounds are 1 to {max}."), max=MAX_ROUNDS)
        quote.round_limit = rounds
    phone = str(form.get("host_phone", "")).strip()
    quote.host_phone = normalise_phone(phone) if phone else ""
    now = now_of(request)
    await quotes.send(db, quote, now, days)
    presented = await quotes.status_named(db, deal.org_id, quotes.PRESENTED)
    if presented is not None:
        await pipeline.change(db, [deal], presented, user, now)
    _ = translator(request)
    link = customer_link(request, quote)
    org: Org = user.org
    until = in_jst(quote.expires_at).strftime("%Y-%m-%d") if quote.expires_at else ""
    customer = await db.get(Customer, deal.customer_id)
    assert customer is not None
    message: OutboxMessage | None = None
    if presented is not None and notices.has_template(presented):  # the org's own words, by its channel rule
        host = await db.get(User, deal.host_id) if deal.host_id else None
        values = {
            "customer_name": customer.name,
            "host_name": host.display_name if host else "",
            "company": org.name,
            "link": link,
        }
        message = notices.queue(db, presented, customer, values, deal.id, domain_of(request))
    if message is None:
        body = _(QUOTE_LINK_TEXT, company=org.name, until=until, link=link)
        message = await tell_customer(request, db, quote, deal, body, _(QUOTE_LINK_SUBJECT, company=org.name))
    await db.commit()
    await deliver(request, [message])
    return RedirectResponse(f"/quotes/{quote.id}?done=sent", status_code=303)


@signed_in()
async def withdraw_quote(request: Request) -> Response:
    quote, _deal = await _quote(request)
    await quotes.withdraw(request.state.db, quote)
    return RedirectResponse(f"/quotes/{quote.id}?done=withdrawn", status_code=303)


@signed_in()
async def host_move(request: Request) -> Response:
    """The host's answer to the customer's amount: accept, decline or a new amount (held in 有人 mode)."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    quote, deal = await _quote(request)
    form = await request.form()
    kind = str(form.get("kind", ""))
    if kind not in MoveKind._value2member_map_ or kind == MoveKind.CLOSED:
        raise InvalidInput()
    amount = negotiation.parse_amount(str(form.get("amount", ""))) if kind == MoveKind.COUNTER else None
    seen = int_field(form.get("version"))
    if seen is None:
        raise InvalidInput()
    now = now_of(request)
    quote, _move, decision = await negotiation.play(
        db, quote.id, seen, Side.HOST, MoveKind(kind), amount, user.id, now
    )
    queued = await after_move(request, db, quote, deal, decision, user)
    await db.commit()
    await deliver(request, queued)
    return RedirectResponse(
        f"/quotes/{quote.id}?done={'held' if decision.held else 'moved'}", status_code=303
    )


async def after_move(
    request: Request,
    db: AsyncSession,
    quote: Quote,
    deal: Deal,
    decision: negotiation.Decision,
    who: User | str,
) -> list[Any]:
    """A sent move's consequences: the deal's status (成約 / 失注) and the notices."""
    now = now_of(request)
    if decision.state in (QuoteState.AGREED, QuoteState.FAILED):
        if decision.state == QuoteState.AGREED:
            quote.accepted_total, quote.answered_at = decision.amount, now
        else:
            quote.answered_at = now
        to = await quotes.status_named(
            db, deal.org_id, quotes.WON if decision.state == QuoteState.AGREED else quotes.LOST
        )
        if to is not None:
            await pipeline.change(db, [deal], to, who, now)
    return await announce(request, db, quote, deal, decision.told, now)


@signed_in(*MANAGERS)
async def approve_move(request: Request) -> Response:
    """有人: a manager sends the host's held move."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    quote, deal = await _quote(request)
    decision = await negotiation.approve(
        db, quote, int(request.path_params["move_id"]), user.id, now_of(request)
    )
    queued = await after_move(request, db, quote, deal, decision, user)
    await db.commit()
    await deliver(request, queued)
    return RedirectResponse(f"/quotes/{quote.id}?done=approved", status_code=303)


@signed_in()
async def quotes_page(request: Request) -> Response:
    """The in-app notices of the signed-in user (answers, moves, held moves), newest first."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    rows = list(
        await db.execute(
            select(QuoteNotice, Quote)
            .join(Quote, Quote.id == QuoteNotice.quote_id)
            .where(QuoteNotice.user_id == user.id)
            .order_by(QuoteNotice.id.desc())
            .limit(200)
        )
    )
    shown = [(notice, quote, in_jst(notice.at)) for notice, quote in rows]
    return render(
        request,
        "quotes.html",
        notices=shown,
        texts=HOST_TEXTS,
        yen=lambda a: f"{a:,}" if a is not None else "",
        events=QuoteEvent,
    )


routes: list[BaseRoute] = [
    Route("/quotes", quotes_page, methods=["GET"]),
    Route("/deals/{deal_id:int}/quotes", new_quote, methods=["POST"]),
    Route("/quotes/{quote_id:int}", quote_page, methods=["GET"]),
    Route("/quotes/{quote_id:int}/items", save_items, methods=["POST"]),
    Route("/api/quotes/{quote_id:int}/import", import_items, methods=["POST"]),
    Route("/quotes/{quote_id:int}/items.xlsx", export_items, methods=["GET"]),
    Route("/quotes/{quote_id:int}/send", send_quote, methods=["POST"]),
    Route("/quotes/{quote_id:int}/withdraw", withdraw_quote, methods=["POST"]),
    Route("/quotes/{quote_id:int}/moves", host_move, methods=["POST"]),
    Route("/quotes/{quote_id:int}/moves/{move_id:int}/approve", approve_move, methods=["POST"]),
]
