"""The staff's side of the マイページ: on a customer's page, send the link (by the customer's channel, through
the outbox), cancel every link and session, leave documents of the library; for admins, what customers may
see (memo / files / documents left; recordings never) and the deletion requests customers sent.

Who may act on a customer is deals.customers.Scope (another org's, or a private org's other host's: 404).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput, NotFound
from deals import customers
from deals.customers import Scope
from deals.models import Customer, OutboxStatus
from documents.library import visible_documents
from documents.models import DocumentStatus
from mypage import deletion, left, links, outbox, sections, sessions
from store.models import Role, User
from web.auth import signed_in
from web.meetings import for_phones
from web.mypage import domain_of, now_of, send
from web.services import services
from web.templating import render, translator

LINK_SUBJECT = N_("Your page at {company}")
LINK_BODY = N_(
    "{company}: the memo, files and documents of your meetings are on your page: {link} (valid until {until})"
)
LINK_NO_CONTACT = N_("The customer has no email address or mobile number: the link could not be sent.")


async def context(request: Request, customer: Customer) -> dict[str, Any]:
    """What the customer page's マイページ box shows (web/customers.py renders it)."""
    db: AsyncSession = request.state.db
    user: User = request.state.user
    now = now_of(request)
    found = await links.of_customer(db, customer.id)
    return {
        "mypage_links": [(link, links.state(link, now).value, in_jst(link.expires_at)) for link in found[:5]],
        "mypage_left": await left.left_for(db, customer),
        "mypage_choosable": [
            d
            for d in await visible_documents(db, user.id, customer.org_id)
            if d.status == DocumentStatus.READY
        ],
    }


async def _customer(request: Request) -> Customer:
    user: User = request.state.user
    scope = Scope.of(user, user.org)
    return await customers.get(request.state.db, scope, int(request.path_params["customer_id"]))


def _back(customer: Customer, done: str) -> Response:
    return RedirectResponse(f"/customers/{customer.id}?mypage={done}#mypage", status_code=303)


@signed_in()
async def send_link(request: Request) -> Response:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    customer = await _customer(request)
    state = services(request)
    days = state.settings.mypage_link_days
    issued = await links.issue(db, customer.org_id, customer.id, user.id, now_of(request), days)
    _ = translator(request)
    url = for_phones(request).url(f"/my/{issued.token}")
    until = in_jst(issued.row.expires_at).strftime("%Y-%m-%d %H:%M")
    message = await outbox.to_customer(
        db,
        customer,
        _(LINK_SUBJECT, company=user.org.name),
        _(LINK_BODY, company=user.org.name, link=url, until=until),
        domain_of(request),
    )
    if message.status == OutboxStatus.NO_CONTACT:
        raise InvalidInput(LINK_NO_CONTACT)
    await db.commit()  # the link stands whatever happens to the message (resend from the outbox)
    await send(request, [message])
    return _back(customer, "sent")


@signed_in()
async def revoke(request: Request) -> Response:
    """Every link of the customer stops working and every browser signed in to its page is signed out."""
    db: AsyncSession = request.state.db
    customer = await _customer(request)
    await links.revoke_all(db, customer.id, now_of(request))
    await sessions.end_all(db, customer.id)
    return _back(customer, "revoked")


@signed_in()
async def leave_document(request: Request) -> Response:
    customer = await _customer(request)
    raw = str((await request.form()).get("document", ""))
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInput()
    user: User = request.state.user
    await left.leave(request.state.db, customer, user.id, int(raw), now_of(request))
    return _back(customer, "left")


@signed_in()
async def remove_document(request: Request) -> Response:
    customer = await _customer(request)
    await left.remove(request.state.db, customer, int(request.path_params["document_id"]))
    return _back(customer, "removed")


@signed_in(Role.ADMIN)
async def settings_page(request: Request) -> Response:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    requests = await deletion.open_requests(db, user.org_id)
    return render(
        request,
        "mypage_settings.html",
        shown=await sections.visibility(db, user.org_id),
        requests=[(r, in_jst(r.requested_at)) for r in requests],
        saved=request.query_params.get("saved") == "1",
    )


@signed_in(Role.ADMIN)
async def save_settings(request: Request) -> Response:
    form = await request.form()
    user: User = request.state.user
    chosen = sections.Visibility(
        show_memo=form.get("show_memo") == "1",
        show_files=form.get("show_files") == "1",
        show_documents=form.get("show_documents") == "1",
    )
    await sections.set_visibility(request.state.db, user.org_id, chosen)
    return RedirectResponse("/mypage-settings?saved=1", status_code=303)


@signed_in(Role.ADMIN)
async def handled(request: Request) -> Response:
    user: User = request.state.user
    done = await deletion.mark_handled(
        request.state.db, user.org_id, int(request.path_params["request_id"]), now_of(request)
    )
    if not done:
        raise NotFound()
    return RedirectResponse("/mypage-settings", status_code=303)


routes: list[BaseRoute] = [
    Route("/customers/{customer_id:int}/mypage/send", send_link, methods=["POST"]),
    Route("/customers/{customer_id:int}/mypage/revoke", revoke, methods=["POST"]),
    Route("/customers/{customer_id:int}/mypage/documents", leave_document, methods=["POST"]),
    Route(
        "/customers/{customer_id:int}/mypage/documents/{document_id:int}/remove",
        remove_document,
        methods=["POST"],
    ),
    Route("/mypage-settings", settings_page, methods=["GET"]),
    Route("/mypage-settings", save_settings, methods=["POST"]),
    Route("/mypage-settings/requests/{request_id:int}/handled", handled, methods=["POST"]),
]
