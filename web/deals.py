"""Deals' pages: the list (filters by status, host, dates, customer, desire flags and survey answers), the
bulk status change of checked deals (a confirmation naming the count first), the CSV of exactly the filter
(UTF-8 with a BOM, survey answers as columns), one deal's page (status change with its survey, the log, the
notices with resend), and the org's outbox.

A status change sends that status's template by the customer's channel (deals.notices); delivery happens
after the change is committed, so a slow or failing mail server never loses the change itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput, NotFound
from deals import listing, notices, pipeline, quotes, surveys
from deals.customers import Scope
from deals.listing import DealFilter, DealRow
from deals.models import Customer, Deal, DealStatus, OutboxMessage, OutboxStatus, Survey
from deals.quote_models import QuoteState
from recordings.console import jst_day_start
from store.models import Role, User
from web.auth import signed_in
from web.customers import now_of, scope_of
from web.files import content_disposition
from web.meetings import guest_page_url
from web.records import (
    BAD_RANGE,
    MANAGERS,
    csv_line,
    csv_lines,
    page_number,
    parse_date,
    query_string,
    stamp,
)
from web.services import services
from web.templating import render, translator

QUOTE_STATES = {
    QuoteState.DRAFT: N_("Draft"),
    QuoteState.SENT: N_("Sent: waiting for the customer"),
    QuoteState.WITHDRAWN: N_("Withdrawn"),
    QuoteState.NEGOTIATING: N_("Negotiating"),
    QuoteState.ACCEPTED: N_("Accepted"),
    QuoteState.DECLINED: N_("Declined"),
    QuoteState.AGREED: N_("Agreed (成約)"),
    QuoteState.FAILED: N_("No agreement (不成立)"),
}
OUTBOX_LABELS = {
    OutboxStatus.PENDING: N_("Waiting to be sent"),
    OutboxStatus.SENDING: N_("Sending"),
    OutboxStatus.SENT: N_("Sent"),
    OutboxStatus.STORED: N_("Kept in the outbox (not sent)"),
    OutboxStatus.FAILED: N_("Failed"),
    OutboxStatus.NO_CONTACT: N_("Not sent: no contact details"),
}
SURVEY_LABELS = {
    Survey.QUOTE: N_("Quote survey: what matters most (up to 3)"),
    Survey.CLOSE: N_("Close survey: the deciding reason"),
    Survey.END: N_("End survey: comparison with other companies"),
    Survey.DESIRE: N_("Desires"),
}
NO_DEALS_CHECKED = N_("Check the deals to change.")
TOO_MANY_CHECKED = N_("Change at most {limit} deals at once.")
BULK_LIMIT = 500  # one request's worth of status changes and notices


@dataclass
class Filters:
    """The filter form as typed, what it means, and what was wrong with it."""

    deal_filter: DealFilter
    form: dict[str, str]
    errors: list[str] = field(default_factory=list)

    def query(self, **changes: str | int) -> str:
        return query_string(self.form, **changes)


def _id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 10 else None


def filters_from(request: Request, scope: Scope, user: User) -> Filters:
    params = request.query_params
    names = ("status", "host", "from", "to", "customer", "desire", "answer")
    form = {name: params.get(name, "").strip()[:200] for name in names}
    errors: list[str] = []
    start, end = parse_date(form["from"], errors), parse_date(form["to"], errors)
    if start and end and start > end:
        errors.append(BAD_RANGE)
        start = end = None
    if user.role == Role.HOST:
        form["host"] = ""
    deal_filter = DealFilter(
        scope=scope,
        status_id=_id(form["status"]),
        host_id=_id(form["host"]),
        created_from=jst_day_start(start) if start else None,
        created_before=jst_day_start(end + timedelta(days=1)) if end else None,
        customer=form["customer"],
        desire=form["desire"],
        answer=form["answer"],
    )
    return Filters(deal_filter, form, errors)


async def _list_context(request: Request, filters: Filters) -> dict[str, Any]:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    rows, total = await listing.find(db, filters.deal_filter, page_number(request))
    choices = await surveys.choices(db, user.org_id)
    return {
        "filters": filters,
        "rows": [(row, in_jst(row.updated_at)) for row in rows],
        "total": total,
        "answers": await surveys.answers(db, [row.id for row in rows]),
        "statuses": await pipeline.statuses(db, user.org_id),
        "hosts": await listing.hosts(db, user.org_id) if user.role in MANAGERS else [],
        "desires": choices.get(Survey.DESIRE, []),
        "answer_choices": [c for s in (Survey.QUOTE, Survey.CLOSE, Survey.END) for c in choices.get(s, [])],
        "has_template": notices.has_template,
    }


@signed_in()
async def deals_page(request: Request) -> Response:
    filters = filters_from(request, scope_of(request), request.state.user)
    context = await _list_context(request, filters)
    return render(request, "deals.html", status_code=400 if filters.errors else 200, **context)


# Status changes and notices


async def _send(request: Request, messages: list[OutboxMessage]) -> None:
    """Deliver the notices made with a committed change (each at most once: deals.notices.deliver)."""
    state = services(request)
    for message in messages:
        await notices.deliver(state.sessions, message.id, state.mailer, state.sms, state.clock)


async def _apply(
    request: Request, deals: list[Deal], to: DealStatus, answers: dict[Survey, list[str]]
) -> list[OutboxMessage]:
    """Change the deals' status, record the survey answers, queue the notices; then commit."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    now = now_of(request)
    for survey, labels in answers.items():
        for deal in deals:
            await surveys.answer(db, user.org_id, deal.id, survey, labels, now)
    changes = await pipeline.change(db, deals, to, user, now)
    queued = []
    domain = services(request).mailer.sender.rpartition("@")[2] or "tsunagu.invalid"
    for change in changes:
        customer = await db.get(Customer, change.deal.customer_id)
        assert customer is not None
        host = await db.get(User, change.deal.host_id) if change.deal.host_id else None
        values = {
            "customer_name": customer.name,
            "host_name": host.display_name if host else "",
            "company": user.org.name,
            "link": guest_page_url(request, user.org.slug),
        }
        message = notices.queue(db, to, customer, values, change.deal.id, domain)
        if message is not None:
            queued.append(message)
    await db.flush()
    await db.commit()  # the change stands whatever happens to the notices
    return queued


def _answers_from(form: Any, survey: Survey) -> dict[Survey, list[str]]:
    picked: dict[Survey, list[str]] = {}
    if survey in (Survey.QUOTE, Survey.CLOSE, Survey.END):
        picked[survey] = [str(v) for v in form.getlist(f"survey_{survey.value}")]
    desires = [str(v) for v in form.getlist("survey_desire")]
    if desires or survey != Survey.NONE:
        picked[Survey.DESIRE] = desires
    return picked


async def _deal_page(request: Request, deal: Deal, status_code: int = 200, **context: Any) -> Response:
    db: AsyncSession = request.state.db
    customer = await db.get(Customer, deal.customer_id)
    statuses = await pipeline.statuses(db, deal.org_id)
    messages = await notices.deal_messages(db, deal.id)
    return render(
        request,
        "deal.html",
        status_code=status_code,
        deal=deal,
        customer=customer,
        statuses=statuses,
        current={s.id: s for s in statuses}[deal.status_id],
        log=[(entry, in_jst(entry.at)) for entry in await pipeline.log(db, deal.id)],
        messages=[(m, in_jst(m.created_at)) for m in messages],
        no_contact=any(m.status == OutboxStatus.NO_CONTACT for m in messages[:1]),
        answers=(await surveys.answers(db, [deal.id])).get(deal.id, {}),
        choices=await surveys.choices(db, deal.org_id),
        survey_labels=SURVEY_LABELS,
        outbox_labels=OUTBOX_LABELS,
        has_template=notices.has_template,
        route=notices.route(customer) if customer else None,
        quotes=await quotes.deal_quotes(db, deal.id),
        quote_states=QUOTE_STATES,
        **context,
    )


@signed_in()
async def deal_page(request: Request) -> Response:
    deal = await pipeline.get_deal(request.state.db, scope_of(request), int(request.path_params["deal_id"]))
    return await _deal_page(request, deal)


@signed_in()
async def change_status(request: Request) -> Response:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    deal = await pipeline.get_deal(db, scope_of(request), int(request.path_params["deal_id"]))
    form = await request.form()
    status_id = _id(str(form.get("status", "")))
    if status_id is None:
        raise InvalidInput()
    to = await pipeline.status(db, user.org_id, status_id)
    queued = await _apply(request, [deal], to, _answers_from(form, to.survey))  # bad answers: nothing changes
    await _send(request, queued)
    return RedirectResponse(f"/deals/{deal.id}?changed=1", status_code=303)


@signed_in()
async def bulk_status(request: Request) -> Response:
    """Change the checked deals: the first post shows a confirmation naming the count, the second does it."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    form = await request.form()
    ids = [i for i in (_id(str(v)) for v in form.getlist("deal")) if i is not None]
    if not ids:
        raise InvalidInput(NO_DEALS_CHECKED)
    if len(ids) > BULK_LIMIT:
        raise InvalidInput(TOO_MANY_CHECKED, limit=BULK_LIMIT)
    status_id = _id(str(form.get("status", "")))
    if status_id is None:
        raise InvalidInput()
    to = await pipeline.status(db, user.org_id, status_id)
    deals = await pipeline.deals_by_ids(db, scope_of(request), ids)
    if form.get("confirm") != "1":
        return render(
            request,
            "deals_confirm.html",
            deals=deals,
            to=to,
            has_template=notices.has_template(to),
            back=str(form.get("back", "")),
        )
    queued = await _apply(request, deals, to, {})
    await _send(request, queued)
    back = str(form.get("back", ""))
    return RedirectResponse(f"/deals?{back}&changed={len(deals)}".replace("?&", "?"), status_code=303)


@signed_in()
async def resend(request: Request) -> Response:
    """Send a failed notice again (at most once: a message sent meanwhile is left alone)."""
    db: AsyncSession = request.state.db
    message = await db.get(OutboxMessage, int(request.path_params["message_id"]))
    user: User = request.state.user
    if message is None or message.org_id != user.org_id or message.deal_id is None:
        raise NotFound()
    deal = await pipeline.get_deal(db, scope_of(request), message.deal_id)
    await db.commit()
    await _send(request, [message])
    return RedirectResponse(f"/deals/{deal.id}?resent=1", status_code=303)


@signed_in(Role.ADMIN, Role.MANAGER)
async def outbox_page(request: Request) -> Response:
    user: User = request.state.user
    messages = await notices.org_outbox(request.state.db, user.org_id)
    return render(
        request,
        "outbox.html",
        messages=[(m, in_jst(m.created_at)) for m in messages],
        outbox_labels=OUTBOX_LABELS,
    )


# CSV

CSV_COLUMNS = (
    N_("Deal"),
    N_("Status"),
    N_("Representative"),
    N_("Customer name"),
    N_("Reading (furigana)"),
    N_("Company"),
    N_("Phone"),
    N_("Email"),
    N_("Created"),
    N_("Updated"),
    N_("Quote survey"),
    N_("Close survey"),
    N_("End survey"),
    N_("Desires"),
)


def csv_rows(rows: list[DealRow], answers: dict[int, dict[Survey, list[str]]]) -> str:
    return csv_lines(
        (
            row.title or f"#{row.id}",
            row.status,
            row.host_name,
            row.customer_name,
            row.customer_reading,
            row.customer_company,
            row.customer_phone,
            row.customer_email,
            stamp(row.created_at),
            stamp(row.updated_at),
            *(
                " / ".join(answers.get(row.id, {}).get(s, []))
                for s in (Survey.QUOTE, Survey.CLOSE, Survey.END)
            ),
            " / ".join(answers.get(row.id, {}).get(Survey.DESIRE, [])),
        )
        for row in rows
    )


async def _csv_body(request: Request, filters: Filters) -> AsyncIterator[bytes]:
    _ = translator(request)
    yield ("\ufeff" + csv_line(_(name) for name in CSV_COLUMNS)).encode("utf-8")
    async for rows, answers in listing.stream(services(request).sessions, filters.deal_filter):
        yield csv_rows(rows, answers).encode("utf-8")


@signed_in()
async def deals_csv(request: Request) -> Response:
    """The filtered list as CSV: UTF-8 with a BOM and CRLF line ends (Excel reads the Japanese right)."""
    filters = filters_from(request, scope_of(request), request.state.user)
    if filters.errors:
        raise InvalidInput(filters.errors[0])
    today = in_jst(datetime.fromtimestamp(services(request).clock(), UTC)).strftime("%Y%m%d")
    name = translator(request)("deals") + f"_{today}.csv"
    return StreamingResponse(
        _csv_body(request, filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(name), "Cache-Control": "private, no-store"},
    )


routes: list[BaseRoute] = [
    Route("/deals", deals_page, methods=["GET"]),
    Route("/deals.csv", deals_csv, methods=["GET"]),
    Route("/deals/bulk-status", bulk_status, methods=["POST"]),
    Route("/deals/{deal_id:int}", deal_page, methods=["GET"]),
    Route("/deals/{deal_id:int}/status", change_status, methods=["POST"]),
    Route("/outbox", outbox_page, methods=["GET"]),
    Route("/outbox/{message_id:int}/resend", resend, methods=["POST"]),
]
