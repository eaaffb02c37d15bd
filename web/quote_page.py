"""The customer's quote page (``/q/{token}``), made for a phone first: accept all, accept some (the total
updates before confirming), or decline; confirming asks for the name as a typed signature and keeps the
time, IP address and user agent. Where the org allows negotiation the customer counters with a total and
answers the host's amounts. An expired or withdrawn link shows a clear page with the company's contact.

The token is the only key (no sign-in): an unknown token is 404. Each answer is claimed in one conditional
UPDATE before anything else is written (deals.quotes.claim_answer, deals.negotiation.play): of two
confirmations at once exactly one is kept; the other is told the quote has already been answered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import InvalidInput
from deals import negotiation, pipeline, quotes
from deals.models import Deal
from deals.quote_models import MoveKind, Negotiation, Quote, QuoteEvent, QuoteState, Side
from deals.quotes import Signature
from signaling.phone import normalise_phone
from store.models import BusinessCard, Org, User
from web.customers import now_of
from web.quote_notify import announce, deliver
from web.quotes import after_move, int_field, quote_context
from web.services import services
from web.templating import render


async def _contact(db: AsyncSession, quote: Quote, deal: Deal) -> dict[str, str]:
    """The company's contact: the org's quote contact, else the host's card (phone, email)."""
    org = await db.get(Org, quote.org_id)
    rules = await quotes.settings_of(db, quote.org_id)
    contact = {"company": org.name if org else "", "text": rules.contact, "phone": "", "email": ""}
    if not rules.contact and deal.host_id:
        card = await db.get(BusinessCard, deal.host_id)
        host = await db.get(User, deal.host_id)
        contact["phone"] = card.phone if card else ""
        contact["email"] = (card.email if card and card.email else "") or (host.email if host else "")
    return contact


async def _load(db: AsyncSession, token: str) -> tuple[Quote, Deal]:
    quote = await quotes.by_token(db, token)
    deal = await db.get(Deal, quote.deal_id)
    assert deal is not None
    return quote, deal


async def _show(
    request: Request, db: AsyncSession, quote: Quote, deal: Deal, status_code: int = 200, **extra: Any
) -> Response:
    now = now_of(request)
    contact = await _contact(db, quote, deal)
    if quote.state == QuoteState.WITHDRAWN or (quote.state == QuoteState.SENT and quotes.expired(quote, now)):
        reason = "withdrawn" if quote.state == QuoteState.WITHDRAWN else "expired"
        return render(request, "quote_closed.html", status_code=410, reason=reason, contact=contact)
    return render(
        request,
        "quote_answer.html",
        status_code=status_code,
        contact=contact,
        token=quote.token,
        can_counter=quote.negotiation != Negotiation.OFF,
        customer_side=Side.CUSTOMER,
        **(await quote_context(db, quote)),
        **extra,
    )


async def quote_answer_page(request: Request) -> Response:
    async with services(request).sessions() as db:
        quote, deal = await _load(db, str(request.path_params["quote_token"]))
        return await _show(request, db, quote, deal)


def _signature(request: Request, name: str) -> Signature:
    ip = request.client.host if request.client else ""
    return Signature.typed(name, ip, request.headers.get("user-agent", ""))


async def answer(request: Request) -> Response:
    """Accept the checked items (all, or some) or decline all, signed with the typed name."""
    token = str(request.path_params["quote_token"])
    form = await request.form()
    choice = str(form.get("choice", ""))
    seen = int_field(form.get("version"))
    if choice not in ("accept", "decline") or seen is None:
        raise InvalidInput()
    signature = _signature(request, str(form.get("name", "")))
    sessions = services(request).sessions
    now = now_of(request)
    async with sessions() as db:  # read first, outside the answering transaction
        quote, deal = await _load(db, token)
        items = await quotes.items_of(db, quote.id)
    chosen = (
        {i for i in (int_field(v) for v in form.getlist("item")) if i is not None}
        if choice == "accept"
        else set()
    )
    if choice == "accept" and not chosen:
        raise quotes.NothingChosen()
    if not chosen <= {item.id for item in items}:
        raise InvalidInput()
    total = quotes.quote_totals(quote, items, chosen).total if chosen else None
    to = QuoteState.ACCEPTED if chosen else QuoteState.DECLINED
    async with sessions.begin() as db:
        await quotes.claim_answer(db, quote.id, seen, to, total, signature, now)
        await quotes.mark_items(db, quote.id, chosen)
        quote, deal = await _load(db, token)
        status = await quotes.status_named(db, deal.org_id, quotes.WON if chosen else quotes.LOST)
        if status is not None:
            await pipeline.change(db, [deal], status, signature.name, now)
        event = QuoteEvent.ACCEPTED if chosen else QuoteEvent.DECLINED
        queued = await announce(request, db, quote, deal, [negotiation.Told(Side.HOST, event, total)], now)
    await deliver(request, queued)
    return RedirectResponse(f"/q/{token}", status_code=303)


async def customer_move(request: Request) -> Response:
    """A counter with a total (and the number for this negotiation's SMS), or the answer to the host's."""
    token = str(request.path_params["quote_token"])
    form = await request.form()
    kind = str(form.get("kind", ""))
    seen = int_field(form.get("version"))
    if kind not in (MoveKind.COUNTER, MoveKind.ACCEPT, MoveKind.DECLINE) or seen is None:
        raise InvalidInput()
    amount = negotiation.parse_amount(str(form.get("amount", ""))) if kind == MoveKind.COUNTER else None
    phone = str(form.get("phone", "")).strip()
    number = normalise_phone(phone) if phone else ""
    signature = _signature(request, str(form.get("name", ""))) if kind == MoveKind.ACCEPT else None
    now = now_of(request)
    async with services(request).sessions.begin() as db:
        quote = await quotes.by_token(db, token)
        quote, _move, decision = await negotiation.play(
            db, quote.id, seen, Side.CUSTOMER, MoveKind(kind), amount, None, now
        )
        if number:
            quote.customer_phone = number
        if signature is not None:
            quote.signer_name, quote.signer_ip, quote.signer_agent = (
                signature.name,
                signature.ip,
                signature.agent,
            )
        deal = await db.get(Deal, quote.deal_id)
        assert deal is not None
        queued = await after_move(
            request, db, quote, deal, decision, signature.name if signature else "お客さま"
        )
    await deliver(request, queued)
    return RedirectResponse(f"/q/{token}", status_code=303)


routes: list[BaseRoute] = [
    Route("/q/{quote_token}", quote_answer_page, methods=["GET"]),
    Route("/q/{quote_token}/answer", answer, methods=["POST"]),
    Route("/q/{quote_token}/moves", customer_move, methods=["POST"]),
]
