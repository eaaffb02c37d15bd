"""Customers' pages: the list (search by name, reading, company, email or phone in any spelling), one
customer's page (details, meetings, deals, notices and survey answers, newest first), editing, merging two
records of one person (a preview first), and tying a meeting to a customer after the call.

Who sees whom is deals.customers.Scope: hosts their own customers unless the org shares them, managers and
admins the org's; another org's customer is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput
from deals import customers, notices, pipeline, surveys
from deals.customers import Scope
from deals.models import Channel, Customer, Deal
from recordings.files import room_files
from signaling.phone import display_mobile, normalise_phone
from signaling.rooms import at
from store.models import User
from web import mypage_staff
from web.auth import signed_in
from web.record_page import record_for
from web.records import page_number
from web.services import services
from web.templating import render, translator

CHANNEL_LABELS = {
    Channel.UNSET: N_("Not given (email, else SMS)"),
    Channel.EMAIL: N_("By email"),
    Channel.SMS: N_("By SMS"),
}
LIMITS = {"name": 100, "reading": 100, "company": 200, "email": 254}
NAME_OR_CONTACT = N_("Enter at least a name, a phone number or an email address.")
BAD_EMAIL = N_("Enter an email address such as name@example.com.")
TOO_LONG = N_("「{field}」 is too long.")
FIELD_LABELS = {
    "name": N_("Customer name"),
    "reading": N_("Reading (furigana)"),
    "company": N_("Company"),
    "email": N_("Email"),
    "phone": N_("Phone"),
}


def scope_of(request: Request) -> Scope:
    user: User = request.state.user
    return Scope.of(user, user.org)


def now_of(request: Request) -> datetime:
    return at(services(request).clock())


def clean_details(form: dict[str, str]) -> dict[str, str | Channel]:
    """A customer's details as typed, checked: lengths, an email's shape, a phone number to E.164."""
    values: dict[str, str | Channel] = {}
    for name, limit in LIMITS.items():
        value = " ".join(form.get(name, "").split())
        if len(value) > limit:
            raise InvalidInput(TOO_LONG, field=FIELD_LABELS[name])
        values[name] = value
    email = str(values["email"])
    if email and ("@" not in email or email.startswith("@") or email.endswith("@") or " " in email):
        raise InvalidInput(BAD_EMAIL)
    phone = form.get("phone", "").strip()
    values["phone"] = normalise_phone(phone) if phone else ""
    if not (values["name"] or values["phone"] or values["email"]):
        raise InvalidInput(NAME_OR_CONTACT)
    channel = form.get("channel", "")
    values["channel"] = Channel(channel) if channel in Channel._value2member_map_ else Channel.UNSET
    return values


@signed_in()
async def customers_page(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:200]
    found, total = await customers.search(request.state.db, scope_of(request), query, page_number(request))
    return render(
        request,
        "customers.html",
        rows=found,
        total=total,
        q=query,
        show_phone=display_mobile,
        channel_labels=CHANNEL_LABELS,
    )


async def _customer_page(
    request: Request, customer: Customer, status_code: int = 200, **context: Any
) -> Response:
    db: AsyncSession = request.state.db
    scope = scope_of(request)
    deals = list(
        await db.scalars(
            select(Deal)
            .where(Deal.customer_id == customer.id, pipeline.deal_visible(scope))
            .order_by(Deal.updated_at.desc(), Deal.id.desc())
        )
    )
    statuses = {s.id: s for s in await pipeline.statuses(db, customer.org_id)}
    answers = await surveys.answers(db, [d.id for d in deals])
    messages = [m for d in deals for m in await notices.deal_messages(db, d.id)]
    messages.sort(key=lambda m: m.id, reverse=True)
    meetings = await customers.meetings(db, scope, customer.id)
    files = {m.room_id: await room_files(db, m.room_id) for m in meetings}
    return render(
        request,
        "customer.html",
        status_code=status_code,
        customer=customer,
        deals=deals,
        statuses=statuses,
        answers=answers,
        messages=messages,
        meetings=[(m, in_jst(m.started_at)) for m in meetings],
        files=files,
        show_phone=display_mobile,
        channel_labels=CHANNEL_LABELS,
        in_jst=in_jst,
        **await mypage_staff.context(request, customer),
        **context,
    )


@signed_in()
async def customer_page(request: Request) -> Response:
    customer = await customers.get(
        request.state.db, scope_of(request), int(request.path_params["customer_id"])
    )
    return await _customer_page(request, customer)


@signed_in()
async def edit_customer(request: Request) -> Response:
    db: AsyncSession = request.state.db
    customer = await customers.get(db, scope_of(request), int(request.path_params["customer_id"]))
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        values = clean_details(form)
        await customers.check_phone_free(db, customer.org_id, str(values["phone"]), customer.id)
    except InvalidInput as exc:
        _ = translator(request)
        params = {**exc.params, **({"field": _(exc.params["field"])} if "field" in exc.params else {})}
        return await _customer_page(request, customer, 400, error=_(exc.message, **params), form=form)
    for name, value in values.items():
        setattr(customer, name, value)
    customer.updated_at = now_of(request)
    return RedirectResponse(f"/customers/{customer.id}?saved=1", status_code=303)


@signed_in()
async def add_customer(request: Request) -> Response:
    """A customer entered by hand (a meeting by connect number has no phone to match)."""
    user: User = request.state.user
    form = {name: str(value) for name, value in (await request.form()).items()}
    try:
        values = clean_details(form)
        await customers.check_phone_free(request.state.db, user.org_id, str(values["phone"]), None)
    except InvalidInput as exc:
        found, total = await customers.search(request.state.db, scope_of(request), "")
        _ = translator(request)
        params = {**exc.params, **({"field": _(exc.params["field"])} if "field" in exc.params else {})}
        return render(
            request,
            "customers.html",
            status_code=400,
            rows=found,
            total=total,
            q="",
            show_phone=display_mobile,
            channel_labels=CHANNEL_LABELS,
            error=_(exc.message, **params),
            form=form,
        )
    now = now_of(request)
    customer = Customer(org_id=user.org_id, owner_id=user.id, created_at=now, updated_at=now, **values)
    request.state.db.add(customer)
    await request.state.db.flush()
    return RedirectResponse(f"/customers/{customer.id}", status_code=303)


@signed_in()
async def merge_preview(request: Request) -> Response:
    other = request.query_params.get("other", "")
    keep_id = int(request.path_params["customer_id"])
    if not other.isdigit() or len(other) > 9:
        customer = await customers.get(request.state.db, scope_of(request), keep_id)
        return await _customer_page(
            request, customer, 400, error=translator(request)(customers.SAME_CUSTOMER)
        )
    preview = await customers.merge_preview(request.state.db, scope_of(request), keep_id, int(other))
    return render(
        request, "customer_merge.html", preview=preview, show_phone=display_mobile, field_labels=FIELD_LABELS
    )


@signed_in()
async def merge(request: Request) -> Response:
    keep_id = int(request.path_params["customer_id"])
    await customers.get(request.state.db, scope_of(request), keep_id)  # someone else's: 404 before anything
    other = str((await request.form()).get("other", ""))
    if not other.isdigit() or len(other) > 9:
        raise InvalidInput(customers.SAME_CUSTOMER)
    await customers.merge(request.state.db, scope_of(request), keep_id, int(other), now_of(request))
    return RedirectResponse(f"/customers/{keep_id}?merged=1", status_code=303)


@signed_in()
async def open_deal(request: Request) -> Response:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    customer = await customers.get(db, scope_of(request), int(request.path_params["customer_id"]))
    title = str((await request.form()).get("title", ""))
    deal = await pipeline.open_deal(db, user.org_id, customer.id, user.id, title, now_of(request))
    return RedirectResponse(f"/deals/{deal.id}", status_code=303)


@signed_in()
async def record_customer(request: Request) -> Response:
    """Tie a meeting to a customer after the call: the one with the phone number typed (any spelling),
    made if there is none yet."""
    record = await record_for(request)
    phone = normalise_phone(str((await request.form()).get("phone", "")))
    user: User = request.state.user
    customer = await customers.match_or_create(request.state.db, record.org_id, user.id, phone)
    await customers.attach_meeting(request.state.db, record.id, customer.id)
    return RedirectResponse(f"/customers/{customer.id}", status_code=303)


routes: list[BaseRoute] = [
    Route("/customers", customers_page, methods=["GET"]),
    Route("/customers", add_customer, methods=["POST"]),
    Route("/customers/{customer_id:int}", customer_page, methods=["GET"]),
    Route("/customers/{customer_id:int}", edit_customer, methods=["POST"]),
    Route("/customers/{customer_id:int}/merge", merge_preview, methods=["GET"]),
    Route("/customers/{customer_id:int}/merge", merge, methods=["POST"]),
    Route("/customers/{customer_id:int}/deals", open_deal, methods=["POST"]),
    Route("/records/{record_id:int}/customer", record_customer, methods=["POST"]),
]
