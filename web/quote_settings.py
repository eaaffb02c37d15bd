"""The org's quote settings, for its admins: tax handling, the link's validity, negotiation (off, 自動 or
有人) and its round limit, and the contact shown to customers. New quotes copy them; made ones keep theirs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import N_, InvalidInput
from deals import quotes
from deals.quote_models import Negotiation, QuoteSettings, TaxMode
from store.models import Role, User
from web.auth import signed_in
from web.quotes import MAX_ROUNDS, NEGOTIATION_LABELS, TAX_LABELS, int_field
from web.templating import render


@signed_in(Role.ADMIN)
async def settings_page(request: Request) -> Response:
    rules = await quotes.settings_of(request.state.db, request.state.user.org_id)
    return render(
        request,
        "quote_settings.html",
        rules=rules,
        tax_labels=TAX_LABELS,
        negotiation_labels=NEGOTIATION_LABELS,
    )


@signed_in(Role.ADMIN)
async def save_settings(request: Request) -> Response:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    form = await request.form()
    tax, mode = str(form.get("tax_mode", "")), str(form.get("negotiation", ""))
    rate, days, rounds = (
        int_field(form.get("tax_rate")),
        int_field(form.get("valid_days")),
        int_field(form.get("round_limit")),
    )
    if (
        tax not in TaxMode._value2member_map_
        or mode not in Negotiation._value2member_map_
        or rate is None
        or not 0 <= rate <= 100
        or days is None
        or not 1 <= days <= quotes.MAX_VALID_DAYS
        or rounds is None
        or not 1 <= rounds <= MAX_ROUNDS
    ):
        raise InvalidInput(N_("Check the settings: tax rate 0–100 %, validity 1–365 days, rounds 1–20."))
    rules = await db.get(QuoteSettings, user.org_id) or QuoteSettings(org_id=user.org_id)
    rules.tax_mode, rules.tax_rate, rules.valid_days = TaxMode(tax), rate, days
    rules.negotiation, rules.round_limit = Negotiation(mode), rounds
    rules.contact = " ".join(str(form.get("contact", "")).split())[:500]
    db.add(rules)
    return RedirectResponse("/quote-settings?saved=1", status_code=303)


routes: list[BaseRoute] = [
    Route("/quote-settings", settings_page, methods=["GET"]),
    Route("/quote-settings", save_settings, methods=["POST"]),
]
