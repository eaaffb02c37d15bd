"""Telling each side about a quote's answer or a negotiation's move: the host in the app (deals.quote_models
.QuoteNotice) and by the org's channel (an email to the host; an SMS to the number the host gave for this
negotiation), the customer by SMS to the number given with the counter (else by the customer's channel,
deals.notices.route). Messages go through the deals' one outbox and are delivered after the commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from core.errors import N_
from deals import notices
from deals.models import Customer, Deal, OutboxMessage, OutboxStatus
from deals.negotiation import Told
from deals.quote_models import Quote, QuoteEvent, QuoteNotice, Side
from store.models import Org, Role, User
from web.i18n import DEFAULT_LANGUAGE, Translator
from web.meetings import for_phones
from web.services import services

# Short on purpose: one SMS segment (70 characters in Japanese) where the link allows it.
CUSTOMER_TEXTS = {
    QuoteEvent.COUNTERED: N_("{company}: new amount for your quote: {amount} yen. {link}"),
    QuoteEvent.AGREED: N_("{company}: agreed at {amount} yen. Thank you. {link}"),
    QuoteEvent.FAILED: N_("{company}: the negotiation ended without agreement. {link}"),
}
HOST_TEXTS = {
    QuoteEvent.ACCEPTED: N_("The customer accepted the quote: {amount} yen."),
    QuoteEvent.DECLINED: N_("The customer declined the quote."),
    QuoteEvent.COUNTERED: N_("The customer offered {amount} yen for the quote."),
    QuoteEvent.AGREED: N_("The negotiation was agreed at {amount} yen."),
    QuoteEvent.FAILED: N_("The negotiation ended without agreement (不成立)."),
    QuoteEvent.HELD: N_("A host's move of {amount} yen waits for a manager's approval."),
    QuoteEvent.APPROVED: N_("A manager approved the host's move."),
}
QUOTE_LINK_SUBJECT = N_("{company}: your quote")
QUOTE_LINK_TEXT = N_("{company}: please see your quote here (valid until {until}). {link}")


def yen(amount: int | None) -> str:
    return f"{amount:,}" if amount is not None else ""


def outbox_row(deal: Deal, channel: str, to: str, subject: str, body: str, domain: str) -> OutboxMessage:
    return OutboxMessage(
        org_id=deal.org_id,
        deal_id=deal.id,
        message_id=f"{uuid.uuid4().hex}@{domain}",
        channel=channel,
        to=to,
        subject=subject[:200],
        body=body,
        status=OutboxStatus.NO_CONTACT if channel == notices.NO_CONTACT else OutboxStatus.PENDING,
    )


def domain_of(request: Request) -> str:
    return services(request).mailer.sender.rpartition("@")[2] or "tsunagu.invalid"


def customer_link(request: Request, quote: Quote) -> str:
    return for_phones(request).url(f"/q/{quote.token}") if quote.token else ""


async def tell_customer(
    request: Request, db: AsyncSession, quote: Quote, deal: Deal, body: str, subject: str = ""
) -> OutboxMessage:
    """An SMS to the negotiation's number when one was given, else by the customer's channel."""
    if quote.customer_phone:
        where = notices.Route("sms", quote.customer_phone)
    else:
        customer = await db.get(Customer, deal.customer_id)
        assert customer is not None
        where = notices.route(customer)
    message = outbox_row(
        deal, where.channel, where.to, subject if where.channel == "email" else "", body, domain_of(request)
    )
    db.add(message)
    return message


async def announce(
    request: Request, db: AsyncSession, quote: Quote, deal: Deal, told: Sequence[Told], now: datetime
) -> list[OutboxMessage]:
    """Queue what each side is told (delivered by the caller after its commit)."""
    org = await db.get(Org, deal.org_id)
    assert org is not None
    company = org.name
    queued: list[OutboxMessage] = []
    for item in told:
        if item.side == Side.CUSTOMER:
            text = CUSTOMER_TEXTS.get(item.event)
            if text is None:
                continue
            ja = Translator(DEFAULT_LANGUAGE)
            body = ja.gettext(
                text, company=company, amount=yen(item.amount), link=customer_link(request, quote)
            )
            queued.append(await tell_customer(request, db, quote, deal, body, company))
            continue
        queued += await _tell_host(request, db, quote, deal, item, company, now)
    await db.flush()
    return queued


async def _tell_host(
    request: Request, db: AsyncSession, quote: Quote, deal: Deal, item: Told, company: str, now: datetime
) -> list[OutboxMessage]:
    if item.event == QuoteEvent.HELD:  # the managers approve: they are told, in the app only
        users = list(
            await db.scalars(
                select(User).where(
                    User.org_id == deal.org_id, User.role.in_((Role.MANAGER, Role.ADMIN)), User.is_active
                )
            )
        )
    else:
        host_id = deal.host_id or quote.author_id
        host = await db.get(User, host_id) if host_id else None
        users = [host] if host else []
    # Not from this request: it is the customer's, and its Host header is theirs to choose (anyone holding a
    # quote link could point the host's email at another site). PUBLIC_URL, else a path for the signed-in app.
    public = services(request).settings.public_url
    link = f"{public or ''}/quotes/{quote.id}"
    queued = []
    for user in users:
        db.add(
            QuoteNotice(
                org_id=deal.org_id,
                user_id=user.id,
                quote_id=quote.id,
                event=item.event,
                amount=item.amount,
                at=now,
            )
        )
        if item.event == QuoteEvent.HELD:
            continue
        text = Translator(user.locale or DEFAULT_LANGUAGE).gettext(
            HOST_TEXTS[item.event], amount=yen(item.amount)
        )
        subject = f"{company}: {deal.title or '#' + str(deal.id)}"
        message = outbox_row(deal, "email", user.email, subject, f"{text}\n{link}", domain_of(request))
        db.add(message)
        queued.append(message)
        if quote.host_phone:
            sms = outbox_row(deal, "sms", quote.host_phone, "", f"{text} {link}", domain_of(request))
            db.add(sms)
            queued.append(sms)
    return queued


async def deliver(request: Request, messages: Sequence[OutboxMessage]) -> None:
    """Send committed notices, each at most once (deals.notices.deliver)."""
    state = services(request)
    for message in messages:
        if message.status == OutboxStatus.PENDING:
            await notices.deliver(state.sessions, message.id, state.mailer, state.sms, state.clock)
