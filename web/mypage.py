"""The customer's マイページ pages, under ``/my`` (the rules are in the ``mypage`` package).

- ``GET /my/{token}``: a link sent by SMS or email. Revoked or expired: a clear page (410). The browser that
  was the guest of one of the customer's meetings goes straight in; any other browser is asked for a 6-digit
  code, which it asks to be sent (``POST /my/{token}/code``; a GET sends nothing, so a messenger's link
  preview cannot spend the codes) and types (``POST /my/{token}/verify``).
- ``GET /my``: the page, for a browser with a live マイページ session; downloads under ``/my/...`` (files,
  memo, the host's card, documents left) are the customer's own or 404. ``GET /my/quotes/{id}`` opens one
  of the customer's quotes at its link (``/q/{token}``, web/quote_page.py), or 404.
- Signing out (this browser or everywhere), answering a survey, asking for deletion.

The session cookie (``tsunagu_mypage``) is HttpOnly, SameSite=Lax, Secure when the site is https, and its
path is ``/my``: it is never sent to the hosts' pages, and a host's session opens no マイページ.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.clock import in_jst, utc
from core.errors import N_, NotFound, Unavailable
from deals.models import Customer, OutboxMessage, OutboxStatus
from deals.notices import deliver, route
from deals.quote_models import QuoteState
from documents.storage import DocumentStorage
from mypage import codes, deletion, links, outbox, sections, sessions
from mypage.links import LinkState
from mypage.models import MypageLink
from recordings.files import RoomFileStorage
from signaling.phone import display_mobile
from signaling.rooms import at, token_hash
from store.models import Org
from web.blobs import blob_response
from web.cards import load_card, vcard_response
from web.files import DOWNLOAD_HEADERS, content_disposition
from web.guests import guest_token
from web.services import services
from web.templating import render, translator

COOKIE = "tsunagu_mypage"
COOKIE_PATH = "/my"
NO_STORE = {"Cache-Control": "private, no-store"}
# A listed quote the customer cannot act on, as the customer reads it (the host's pages word it for hosts).
QUOTE_STATES = {
    QuoteState.NEGOTIATING: N_("Waiting for our answer."),
    QuoteState.ACCEPTED: N_("Accepted"),
    QuoteState.DECLINED: N_("Declined"),
    QuoteState.AGREED: N_("Agreed (成約)"),
    QuoteState.FAILED: N_("No agreement (不成立)"),
}
Endpoint = Callable[[Request], Awaitable[Response]]

LINK_REVOKED = N_("This link has been cancelled. Please ask the company for a new one.")
LINK_EXPIRED = N_("This link has expired. Please ask the company for a new one.")
CODE_WRONG = N_("The code is not correct. {left} tries left.")
CODE_LOCKED = N_("The code was entered wrongly too many times. Send a new code.")
CODE_EXPIRED = N_("The code has expired. Send a new code.")
CODE_NONE = N_("Send a code first.")
CODE_SHAPE = N_("Enter the 6-digit code.")
CODES_LIMITED = N_("Too many codes were sent for this link. Please wait {minutes} minutes and try again.")
NO_CONTACT = N_("We have no phone number or email address to send a code to. Please contact the company.")
CODE_SUBJECT = N_("Your code for {company}")
CODE_BODY = N_("{company}: your code is {code}. It is valid for 10 minutes. Do not share it.")
DELETION_SUBJECT = N_("A customer asks for their data to be deleted")
DELETION_BODY = N_(
    "Customer No. {customer_id} ({label}) asked from their page for their data to be deleted.\n\n"
    "{message}\n\nSee the requests in the マイページ settings."
)


def now_of(request: Request) -> datetime:
    return at(services(request).clock())


def domain_of(request: Request) -> str:
    return services(request).mailer.sender.rpartition("@")[2] or "tsunagu.invalid"


async def send(request: Request, messages: list[OutboxMessage]) -> None:
    """Deliver messages made in a committed transaction (each at most once: deals.notices.deliver)."""
    state = services(request)
    for message in messages:
        if message.status == OutboxStatus.PENDING:
            await deliver(state.sessions, message.id, state.mailer, state.sms, state.clock)


def _masked(customer: Customer, channel: str) -> str:
    """Where the code goes, shown without giving the whole address away."""
    if channel == "sms":
        shown = display_mobile(customer.phone)
        return "•" * max(0, len(shown) - 4) + shown[-4:]
    name, _at, domain = customer.email.partition("@")
    return f"{name[:1]}•••@{domain}"


def _set_cookie(request: Request, response: Response, token: str) -> None:
    state = services(request)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(state.settings.mypage_session_hours * 3600),
        path=COOKIE_PATH,
        secure=state.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def _closed(request: Request, link_state: LinkState) -> Response:
    message = LINK_REVOKED if link_state == LinkState.REVOKED else LINK_EXPIRED
    return render(
        request, "mypage_closed.html", status_code=410, headers=NO_STORE, message=translator(request)(message)
    )


async def _valid_link(db: AsyncSession, request: Request) -> tuple[MypageLink, Customer] | Response:
    link = await links.find(db, request.path_params["link_token"])
    link_state = links.state(link, now_of(request))
    if link_state != LinkState.VALID:
        return _closed(request, link_state)
    customer = await db.get(Customer, link.customer_id)
    if customer is None or customer.org_id != link.org_id:
        raise NotFound()
    return link, customer


async def _code_page(
    request: Request,
    db: AsyncSession,
    link: MypageLink,
    customer: Customer,
    status_code: int = 200,
    **context: object,
) -> Response:
    where = route(customer)
    newest = await codes.current(db, link.id)
    now = now_of(request)
    usable = (
        newest is not None
        and newest.used_at is None
        and utc(newest.expires_at) > now
        and newest.tries < codes.TRIES
    )
    org = await db.get(Org, customer.org_id)
    return render(
        request,
        "mypage_code.html",
        status_code=status_code,
        headers=NO_STORE,
        token=request.path_params["link_token"],
        org=org,
        channel=where.channel,
        destination=_masked(customer, where.channel) if where.channel != "none" else "",
        code_sent=usable,
        **context,
    )


async def open_link(request: Request) -> Response:
    async with services(request).sessions.begin() as db:
        found = await _valid_link(db, request)
        if isinstance(found, Response):
            return found
        link, customer = found
        now = now_of(request)
        current = await sessions.customer_of(db, request.cookies.get(COOKIE), now)
        if current is not None and current.id == customer.id:
            return RedirectResponse("/my", status_code=303)
        guest = guest_token(request)
        if guest and await sessions.known_browser(db, customer.id, token_hash(guest)):
            token = await sessions.start(
                db, customer.org_id, customer.id, now, services(request).settings.mypage_session_hours
            )
            response = RedirectResponse("/my", status_code=303)
            _set_cookie(request, response, token)
            return response
        return await _code_page(request, db, link, customer)


async def send_code(request: Request) -> Response:
    state = services(request)
    _ = translator(request)
    async with state.sessions.begin() as db:
        found = await _valid_link(db, request)
        if isinstance(found, Response):
            return found
        link, customer = found
        org = await db.get(Org, customer.org_id)
        assert org is not None
        try:
            attempt = await state.mypage_code_limiter.hit(f"link:{link.id}")
        except Unavailable as down:
            return await _code_page(
                request, db, link, customer, down.status, error=_(down.message, **down.params)
            )
        if not attempt.counted:
            minutes = max(1, round(attempt.retry_after / 60))
            return await _code_page(request, db, link, customer, 429, error=_(CODES_LIMITED, minutes=minutes))
        code = await codes.new_code(db, link.id, now_of(request))
        message = await outbox.to_customer(
            db,
            customer,
            _(CODE_SUBJECT, company=org.name),
            _(CODE_BODY, company=org.name, code=code),
            domain_of(request),
        )
        if message.status == OutboxStatus.NO_CONTACT:
            return await _code_page(request, db, link, customer, 400, error=_(NO_CONTACT))
    await send(request, [message])
    async with state.sessions() as db:
        return await _code_page(request, db, link, customer)


async def verify_code(request: Request) -> Response:
    state = services(request)
    _ = translator(request)
    code = str((await request.form()).get("code", "")).strip()
    async with state.sessions() as db:
        found = await _valid_link(db, request)
        if isinstance(found, Response):
            return found
        link, customer = found
        if not codes.well_formed(code):
            return await _code_page(request, db, link, customer, 400, error=_(CODE_SHAPE))
    checked = await codes.check(state.sessions, link.id, code, now_of(request))
    if checked.verdict == codes.Verdict.ACCEPTED:
        async with state.sessions.begin() as db:
            token = await sessions.start(
                db, customer.org_id, customer.id, now_of(request), state.settings.mypage_session_hours
            )
        response = RedirectResponse("/my", status_code=303)
        _set_cookie(request, response, token)
        return response
    errors = {
        codes.Verdict.WRONG: (400, _(CODE_WRONG, left=checked.left)),
        codes.Verdict.LOCKED: (429, _(CODE_LOCKED)),
        codes.Verdict.EXPIRED: (400, _(CODE_EXPIRED)),
        codes.Verdict.NONE: (400, _(CODE_NONE)),
    }
    status_code, error = errors[checked.verdict]
    async with state.sessions() as db:
        return await _code_page(request, db, link, customer, status_code, error=error)


# --- the page (a live session) ---------------------------------------------------------------------------


def with_customer(endpoint: Endpoint) -> Endpoint:
    """Run the endpoint in one transaction with ``request.state.customer`` set from the マイページ cookie;
    without a live session, 404 (downloads) — the page itself shows how to come back instead."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        async with services(request).sessions.begin() as db:
            request.state.db = db
            customer = await sessions.customer_of(db, request.cookies.get(COOKIE), now_of(request))
            if customer is None:
                if request.url.path == COOKIE_PATH and request.method == "GET":
                    return render(request, "mypage_signed_out.html", status_code=401, headers=NO_STORE)
                raise NotFound()
            request.state.customer = customer
            return await endpoint(request)

    return guarded


@with_customer
async def home(request: Request) -> Response:
    db: AsyncSession = request.state.db
    customer: Customer = request.state.customer
    shown = await sections.visibility(db, customer.org_id)
    org = await db.get(Org, customer.org_id)
    meetings = await sections.meetings(db, customer, shown)
    return render(
        request,
        "mypage.html",
        headers=NO_STORE,
        customer=customer,
        org=org,
        shown=shown,
        meetings=[(m, in_jst(m.started_at)) for m in meetings],
        documents=await sections.documents_left(db, customer, shown),
        quotes=[
            (q, in_jst(q.valid_until) if q.valid_until else None)
            for q in await sections.quotes_to_answer(db, customer, now_of(request))
        ],
        quote_states=QUOTE_STATES,
        surveys=await sections.surveys_to_fill(db, customer),
        notice=request.query_params.get("done", ""),
    )


@with_customer
async def download_file(request: Request) -> Response:
    db: AsyncSession = request.state.db
    customer: Customer = request.state.customer
    shown = await sections.visibility(db, customer.org_id)
    row = await sections.file_of(db, customer, int(request.path_params["file_id"]), shown)
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(row.name)}
    storage = services(request).storage
    key = RoomFileStorage(storage).key(row.org_id, row.room_id, row.id)
    return await blob_response(request, storage, key, row.content_type, headers)


@with_customer
async def download_memo(request: Request) -> Response:
    db: AsyncSession = request.state.db
    customer: Customer = request.state.customer
    shown = await sections.visibility(db, customer.org_id)
    record = await sections.meeting_of(db, customer, int(request.path_params["record_id"]))
    if not shown.show_memo:
        raise NotFound()
    text = await sections.memo_text(db, record)
    name = translator(request)("memo") + f"_{in_jst(record.started_at).strftime('%Y%m%d')}.txt"
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(name)}
    return Response(text.encode("utf-8"), media_type="text/plain; charset=utf-8", headers=headers)


@with_customer
async def host_card(request: Request) -> Response:
    db: AsyncSession = request.state.db
    host = await sections.host_of(db, request.state.customer, int(request.path_params["record_id"]))
    await db.refresh(host, ["org"])
    return await vcard_response(request, await load_card(db, host))


@with_customer
async def download_document(request: Request) -> Response:
    db: AsyncSession = request.state.db
    customer: Customer = request.state.customer
    shown = await sections.visibility(db, customer.org_id)
    document = await sections.document_of(db, customer, int(request.path_params["document_id"]), shown)
    name = document.name if document.name.lower().endswith(".pdf") else f"{document.name}.pdf"
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(name)}
    storage = services(request).storage
    key = DocumentStorage(storage).original(document.org_id, document.id)
    return await blob_response(request, storage, key, "application/pdf", headers)


@with_customer
async def open_quote(request: Request) -> Response:
    """The customer's own quote, by its id on the page: checked against the signed-in customer (another's:
    404), then its link, the one the customer was sent, where it is answered."""
    token = await sections.quote_link_of(
        request.state.db, request.state.customer, int(request.path_params["quote_id"])
    )
    return RedirectResponse(f"/q/{token}", status_code=303, headers=NO_STORE)


@with_customer
async def answer_survey(request: Request) -> Response:
    form = await request.form()
    labels = [str(v) for v in form.getlist("answer")]
    await sections.answer_survey(
        request.state.db, request.state.customer, int(request.path_params["deal_id"]), labels, now_of(request)
    )
    return RedirectResponse("/my?done=survey", status_code=303)


@with_customer
async def ask_deletion(request: Request) -> Response:
    db: AsyncSession = request.state.db
    customer: Customer = request.state.customer
    message = str((await request.form()).get("message", ""))
    asked = await deletion.ask(db, customer, message, now_of(request))
    _ = translator(request)
    queued = []
    if asked is not None:
        body = _(DELETION_BODY, customer_id=customer.id, label=asked.customer_label, message=asked.message)
        for admin in await deletion.admins(db, customer.org_id):
            queued.append(
                await outbox.to_email(
                    db, customer.org_id, admin.email, _(DELETION_SUBJECT), body, domain_of(request)
                )
            )
    await db.commit()  # the request stands whatever happens to the emails
    await send(request, queued)
    return RedirectResponse("/my?done=deletion", status_code=303)


async def sign_out(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        async with services(request).sessions.begin() as db:
            await sessions.end(db, token)
    response = RedirectResponse("/my", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@with_customer
async def sign_out_everywhere(request: Request) -> Response:
    await sessions.end_all(request.state.db, request.state.customer.id)
    response = RedirectResponse("/my", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


routes: list[BaseRoute] = [
    Route("/my", home, methods=["GET"]),
    Route("/my/files/{file_id:int}", download_file, methods=["GET"]),
    Route("/my/meetings/{record_id:int}/memo.txt", download_memo, methods=["GET"]),
    Route("/my/meetings/{record_id:int}/card.vcf", host_card, methods=["GET"]),
    Route("/my/documents/{document_id:int}.pdf", download_document, methods=["GET"]),
    Route("/my/quotes/{quote_id:int}", open_quote, methods=["GET"]),
    Route("/my/surveys/{deal_id:int}", answer_survey, methods=["POST"]),
    Route("/my/deletion", ask_deletion, methods=["POST"]),
    Route("/my/{link_token}", open_link, methods=["GET"]),
    Route("/my/{link_token}/code", send_code, methods=["POST"]),
    Route("/my/{link_token}/verify", verify_code, methods=["POST"]),
    # Last: the authorisation walk goes in route order, and these end the session it walks with.
    Route("/my/sign-out-everywhere", sign_out_everywhere, methods=["POST"]),
    Route("/my/sign-out", sign_out, methods=["POST"]),
]
