"""One walk over every route of the app (``app.routes``, WebSockets and the static mount included), as each of
six people: the guest of a meeting, its host, another host of the same org, a manager, an admin, and another
org's admin. Each answer is checked against :data:`EXPECTED`; a route without an entry fails the test.

Unsafe requests carry the person's CSRF token (CSRF itself is tested in test_auth.py) and a harmless body, so
what is checked is who may do what. The objects are org "acme"'s: a meeting (room, record, file), the host's
own document and template, the host's card photo. Routes that destroy their object get a fresh one for each
request. Every 200 another org's admin or the other host gets must not show the meeting's traces.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed

from deals import customers, pipeline, quotes
from deals.models import Customer, Deal, OutboxMessage, OutboxStatus
from deals.quote_models import MoveKind, MoveState, Negotiation, QuoteMove, QuoteState, Side
from documents.models import Document, DocumentStatus
from mypage import deletion
from mypage import links as mypage_links
from mypage.models import LeftDocument
from recordings.models import MeetingRecord, PageView, Recording
from signaling.models import SmsMessage
from signaling.protocol import SUBPROTOCOL
from store.models import BusinessCard, MemoTemplate, Role
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from tests.helpers import seed_org
from tests.joining import Browser
from web import accounts
from web.card_images import card_key
from web.services import services

PEOPLE = ("guest", "host", "other_host", "manager", "admin", "other_admin")
WS_WELCOMED, WS_ADMITTED = "welcome", "admitted"  # first frame types; an int is a close code

# (method, path) -> answers of guest, host, other host, manager, admin, other org's admin.
EXPECTED: dict[tuple[str, str], tuple[int | str, ...]] = {
    # The guest's way in: public, and signing in grants nothing more.
    ("GET", "/"): (200, 200, 200, 200, 200, 200),
    ("GET", "/g/{slug}"): (200, 200, 200, 200, 200, 200),
    ("GET", "/j/{token}"): (200, 200, 200, 200, 200, 200),
    ("POST", "/api/numbers"): (201, 201, 201, 201, 201, 201),
    ("POST", "/api/links/{token}/accept"): (200, 200, 200, 200, 200, 200),
    ("WS", "/ws/lobby"): (WS_ADMITTED, 4003, 4003, 4003, 4003, 4003),  # only a browser that issued a number
    # The host's screen and the call: any signed-in user may host; a room only to its two participants.
    ("GET", "/host"): (303, 200, 200, 200, 200, 200),
    ("GET", "/host/qr.svg"): (303, 200, 200, 200, 200, 200),
    ("POST", "/api/rooms"): (401, 400, 400, 400, 400, 400),
    ("POST", "/api/rooms/link"): (401, 400, 400, 400, 400, 400),
    ("GET", "/rooms/{room_id}"): (200, 200, 404, 404, 404, 404),
    ("WS", "/ws/rooms/{room_id}"): (WS_WELCOMED, WS_WELCOMED, 4004, 4004, 4004, 4004),
    ("GET", "/rooms/{room_id}/memo.txt"): (200, 200, 404, 404, 404, 404),
    ("GET", "/rooms/{room_id}/card"): (200, 200, 404, 404, 404, 404),
    ("GET", "/rooms/{room_id}/card.vcf"): (200, 200, 404, 404, 404, 404),
    ("POST", "/api/rooms/{room_id}/files"): (400, 400, 404, 404, 404, 404),
    ("GET", "/api/rooms/{room_id}/files"): (200, 200, 404, 404, 404, 404),
    ("GET", "/rooms/{room_id}/files/{file_id}"): (200, 200, 404, 404, 404, 404),
    # Accounts.
    ("GET", "/login"): (200, 200, 200, 200, 200, 200),
    ("POST", "/login"): (401, 401, 401, 401, 401, 401),  # a wrong password, whoever asks
    ("POST", "/logout"): (303, 303, 303, 303, 303, 303),
    ("GET", "/account"): (303, 200, 200, 200, 200, 200),
    ("POST", "/account/password"): (401, 400, 400, 400, 400, 400),
    ("POST", "/language"): (400, 400, 400, 400, 400, 400),
    ("GET", "/manage"): (303, 403, 403, 200, 200, 200),
    # Admin pages: admins, of their own org.
    ("GET", "/admin/users"): (303, 403, 403, 403, 200, 200),
    ("POST", "/admin/users"): (401, 403, 403, 403, 400, 400),
    ("POST", "/admin/users/{user_id}/deactivate"): (401, 403, 403, 403, 303, 404),
    ("POST", "/admin/users/{user_id}/activate"): (401, 403, 403, 403, 303, 404),
    ("GET", "/admin/sms"): (303, 403, 403, 403, 200, 200),
    ("GET", "/admin/settings"): (303, 403, 403, 403, 200, 200),
    ("POST", "/admin/settings"): (401, 403, 403, 403, 400, 400),
    # The document library: hosts and admins; a host's own document is its own (and its org's managers').
    ("GET", "/documents"): (303, 200, 200, 403, 200, 200),
    ("GET", "/api/documents"): (401, 200, 200, 403, 200, 200),
    ("POST", "/api/documents"): (401, 415, 415, 403, 415, 415),  # past the role check: JSON is no PDF
    ("GET", "/api/documents/{document_id}"): (401, 200, 404, 403, 200, 404),
    ("POST", "/api/documents/{document_id}/kind"): (401, 400, 404, 403, 400, 404),
    ("POST", "/api/documents/{document_id}/delete"): (401, 200, 404, 403, 200, 404),
    ("GET", "/documents/{document_id}/pages/{n}.jpg"): (200, 200, 404, 200, 200, 404),  # the guest saw it
    ("GET", "/documents/{document_id}/thumbs/{n}.jpg"): (200, 200, 404, 200, 200, 404),
    # Memo templates: everyone signed in has their own; deleting one is its owner's.
    ("GET", "/memo-templates"): (303, 200, 200, 200, 200, 200),
    ("POST", "/memo-templates"): (401, 400, 400, 400, 400, 400),
    ("POST", "/memo-templates/{template_id}/delete"): (401, 303, 404, 404, 404, 404),
    # The org's default template: its admins choose one of the shared templates.
    ("POST", "/memo-templates/{template_id}/default"): (401, 404, 404, 404, 303, 404),
    ("GET", "/api/memo-templates"): (401, 200, 200, 200, 200, 200),
    # 名刺: one's own card; a card's images to its org and to the guest of its live meeting.
    ("GET", "/card"): (303, 200, 200, 200, 200, 200),
    ("POST", "/card"): (401, 400, 400, 400, 400, 400),  # one's own card; an empty one is refused
    ("POST", "/api/card/images"): (401, 400, 400, 400, 400, 400),
    ("POST", "/api/card/images/{slot}/delete"): (401, 200, 200, 200, 200, 200),  # one's own (empty) slot
    ("GET", "/cards/{user_id}/{slot}.jpg"): (200, 200, 200, 200, 200, 404),
    # 商談記録: a host its own meetings, managers and admins their org's.
    ("GET", "/records"): (303, 200, 200, 200, 200, 200),
    ("GET", "/records.csv"): (303, 200, 200, 200, 200, 200),
    ("GET", "/records/{record_id}"): (303, 200, 404, 200, 200, 404),
    ("POST", "/records/{record_id}/guest"): (401, 303, 404, 303, 303, 404),
    ("GET", "/records/{record_id}/files/{file_id}"): (303, 200, 404, 200, 200, 404),
    # レコログ: the replay, its data and files as the record; deleting a recording is for managers/admins.
    ("GET", "/records/{record_id}/replay"): (303, 200, 404, 200, 200, 404),
    ("GET", "/records/{record_id}/replay.json"): (303, 200, 404, 200, 200, 404),
    ("GET", "/records/{record_id}/recordings/{recording_id}"): (303, 200, 404, 200, 200, 404),
    ("POST", "/records/{record_id}/recordings/{recording_id}/delete"): (401, 404, 404, 303, 303, 404),
    ("GET", "/reports"): (303, 403, 403, 200, 200, 200),
    ("GET", "/reports.csv"): (303, 403, 403, 200, 200, 200),
    # 同席: managers and admins of the meeting's org, read-only.
    ("GET", "/live"): (303, 403, 403, 200, 200, 200),
    ("GET", "/live/{room_id}"): (303, 403, 403, 200, 200, 404),
    ("POST", "/api/sit-in/{room_id}/offer"): (401, 403, 403, 400, 400, 404),
    ("WS", "/ws/sit-in/{room_id}"): (4004, 4004, 4004, "sit_in.welcome", "sit_in.welcome", 4004),
    # Customers and deals: a host its own customers' deals (unless the org shares them), managers and
    # admins their org's; the outbox to managers and admins; the pipeline, templates and surveys to admins.
    ("GET", "/customers"): (303, 200, 200, 200, 200, 200),
    ("POST", "/customers"): (401, 400, 400, 400, 400, 400),  # an empty customer is refused
    ("GET", "/customers/{customer_id}"): (303, 200, 404, 200, 200, 404),
    ("POST", "/customers/{customer_id}"): (401, 400, 404, 400, 400, 404),
    ("GET", "/customers/{customer_id}/merge"): (303, 400, 404, 400, 400, 404),
    ("POST", "/customers/{customer_id}/merge"): (401, 400, 404, 400, 400, 404),
    ("POST", "/customers/{customer_id}/deals"): (401, 303, 404, 303, 303, 404),
    ("POST", "/records/{record_id}/customer"): (401, 400, 404, 400, 400, 404),  # no phone number given
    ("GET", "/deals"): (303, 200, 200, 200, 200, 200),
    ("GET", "/deals.csv"): (303, 200, 200, 200, 200, 200),
    ("POST", "/deals/bulk-status"): (401, 400, 400, 400, 400, 400),  # nothing checked
    ("GET", "/deals/{deal_id}"): (303, 200, 404, 200, 200, 404),
    ("POST", "/deals/{deal_id}/status"): (401, 400, 404, 400, 400, 404),
    ("GET", "/outbox"): (303, 403, 403, 200, 200, 200),
    ("POST", "/outbox/{message_id}/resend"): (401, 303, 404, 303, 303, 404),  # sent already: nothing twice
    ("GET", "/deal-settings"): (303, 403, 403, 403, 200, 200),
    ("POST", "/deal-settings/statuses"): (401, 403, 403, 403, 400, 400),
    ("POST", "/deal-settings/statuses/{status_id}"): (401, 403, 403, 403, 400, 404),
    ("POST", "/deal-settings/order"): (401, 403, 403, 403, 303, 303),
    ("POST", "/deal-settings/surveys/{survey}"): (401, 403, 403, 403, 303, 303),  # each admin's own org
    ("POST", "/deal-settings/share"): (401, 403, 403, 403, 303, 303),
    # The guest マイページ: only the browser signed in to the customer's page (here the guest of the walked
    # meeting, who opened the link it was sent: no code for the call's browser) reaches its things; a host's
    # session opens nothing there. Anyone holding the link may ask for a code (five an hour per link).
    ("GET", "/my"): (200, 401, 401, 401, 401, 401),
    ("GET", "/my/files/{file_id}"): (200, 404, 404, 404, 404, 404),
    ("GET", "/my/meetings/{record_id}/memo.txt"): (200, 404, 404, 404, 404, 404),
    ("GET", "/my/meetings/{record_id}/card.vcf"): (200, 404, 404, 404, 404, 404),
    ("GET", "/my/documents/{document_id}.pdf"): (200, 404, 404, 404, 404, 404),
    ("GET", "/my/quotes/{quote_id}"): (303, 404, 404, 404, 404, 404),  # the customer's own: to its link
    ("POST", "/my/surveys/{deal_id}"): (404, 404, 404, 404, 404, 404),  # its status asks no survey
    ("POST", "/my/deletion"): (303, 404, 404, 404, 404, 404),  # one open already: nobody is told twice
    ("GET", "/my/{link_token}"): (303, 200, 200, 200, 200, 200),  # the code page for other browsers
    ("POST", "/my/{link_token}/code"): (200, 200, 200, 200, 200, 429),
    ("POST", "/my/{link_token}/verify"): (400, 400, 400, 400, 400, 400),  # no code typed
    ("POST", "/my/sign-out-everywhere"): (303, 404, 404, 404, 404, 404),
    ("POST", "/my/sign-out"): (303, 303, 303, 303, 303, 303),
    ("POST", "/customers/{customer_id}/mypage/send"): (401, 303, 404, 303, 303, 404),
    ("POST", "/customers/{customer_id}/mypage/revoke"): (401, 303, 404, 303, 303, 404),
    ("POST", "/customers/{customer_id}/mypage/documents"): (401, 400, 404, 400, 400, 404),
    ("POST", "/customers/{customer_id}/mypage/documents/{document_id}/remove"): (
        401,
        303,
        404,
        303,
        303,
        404,
    ),
    ("GET", "/mypage-settings"): (303, 403, 403, 403, 200, 200),
    ("POST", "/mypage-settings"): (401, 403, 403, 403, 303, 303),
    ("POST", "/mypage-settings/requests/{request_id}/handled"): (401, 403, 403, 403, 303, 404),
    # Quotes: who sees the deal sees its quotes; approving a held move is for managers and admins; the quote
    # settings are the admins'; the customer's page is the link's (public, its token the only key).
    ("GET", "/quotes"): (303, 200, 200, 200, 200, 200),  # one's own in-app notices
    ("POST", "/deals/{deal_id}/quotes"): (401, 303, 404, 303, 303, 404),
    ("GET", "/quotes/{quote_id}"): (303, 200, 404, 200, 200, 404),
    ("POST", "/quotes/{quote_id}/items"): (401, 400, 404, 400, 400, 404),  # no lines: refused
    ("POST", "/api/quotes/{quote_id}/import"): (401, 400, 404, 400, 400, 404),  # an empty file
    ("GET", "/quotes/{quote_id}/items.xlsx"): (303, 200, 404, 200, 200, 404),
    ("POST", "/quotes/{quote_id}/send"): (401, 409, 404, 409, 409, 404),  # already sent
    ("POST", "/quotes/{quote_id}/withdraw"): (401, 303, 404, 303, 303, 404),  # a fresh sent quote each
    ("POST", "/quotes/{quote_id}/moves"): (401, 400, 404, 400, 400, 404),  # no move named
    ("POST", "/quotes/{quote_id}/moves/{move_id}/approve"): (
        401,
        403,
        403,
        303,
        303,
        404,
    ),  # a fresh held one
    ("GET", "/quote-settings"): (303, 403, 403, 403, 200, 200),
    ("POST", "/quote-settings"): (401, 403, 403, 403, 400, 400),
    ("GET", "/q/{quote_token}"): (200, 200, 200, 200, 200, 200),
    ("POST", "/q/{quote_token}/answer"): (400, 400, 400, 400, 400, 400),
    ("POST", "/q/{quote_token}/moves"): (400, 400, 400, 400, 400, 400),
    # Operations and static files.
    ("GET", "/healthz"): (200, 200, 200, 200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200, 200, 200, 200),
    ("GET", "/static"): (200, 200, 200, 200, 200, 200),
}
STATIC_FILE = "/static/app.css"
LAST = ("/logout",)  # signs everyone out: walked after everything else


@dataclass
class World:
    """Org "acme"'s objects, and factories for routes that use theirs up."""

    values: dict[str, str]
    fresh: dict[str, Callable[[], Awaitable[str]]] = field(default_factory=dict)
    traces: list[str] = field(default_factory=list)  # what only acme's host, managers and admins may see


async def _ready_document(host: Browser, name: str) -> int:
    response = await host.http.post(
        f"/api/documents?name={name}",
        content=text_pdf(2),
        headers={"X-CSRF-Token": host.csrf, "Content-Type": "application/pdf", "Accept": "application/json"},
    )
    assert response.status_code == 202, response.text
    document_id = int(response.json()["id"])
    deadline = time.monotonic() + 60
    while (await host.http.get(f"/api/documents/{document_id}")).json()["status"] != "ready":
        assert time.monotonic() < deadline, "the document was not rendered within 60 s"
        await asyncio.sleep(0.2)
    return document_id


async def _world(server: LiveServer, people: dict[str, Browser]) -> World:
    host, guest = people["host"], people["guest"]
    app = server.app
    await guest.open("/g/acme")
    number = (await guest.post_json("/api/numbers", {"org": "acme"})).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    sent = await guest.http.post(
        f"/api/rooms/{room_id}/files?name=acme-secret-file.txt",
        content=b"hello",
        headers={"X-CSRF-Token": guest.csrf, "Content-Type": "text/plain", "Accept": "application/json"},
    )
    assert sent.status_code == 201, sent.text
    document_id = await _ready_document(host, "acme-secret-doc.pdf")
    spare = server.call(_spare_host(app))

    async def objects() -> tuple[int, int, int]:
        async with services(app).sessions.begin() as db:
            record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
            assert record is not None
            record.guest_company = "秘密商事"
            db.add(PageView(room_id=room_id, document_id=document_id, page=1, started_at=record.started_at))
            user_id = int(record.host_id or 0)
            db.add(BusinessCard(user_id=user_id, org_id=record.org_id, photo="photo.jpg"))
            secret = "acme-secret-memo"
            template = MemoTemplate(org_id=record.org_id, owner_id=user_id, title="t", body=secret)
            db.add(template)
            await db.flush()
            return record.id, user_id, template.id

    record_id, host_id, template_id = server.call(objects())

    async def recording_row() -> str:  # a recorded track of the meeting, its file in storage
        async with services(app).sessions.begin() as db:
            record = await db.get(MeetingRecord, record_id)
            assert record is not None
            key = f"recordings/{record.org_id}/{room_id}/{time.time_ns()}-host-camera.webm"
            await services(app).storage.put(key, b"\x1aE\xdf\xa3 not checked when served")
            made = Recording(
                org_id=record.org_id,
                room_id=room_id,
                seat="host",
                track="camera",
                key=key,
                origin_at=record.started_at,
                start_ms=0,
                end_ms=1000,
                size=28,
                state="done",
            )
            db.add(made)
            await db.flush()
            return str(made.id)

    async def recording() -> str:
        return server.call(recording_row())

    customer_id, deal_id, message_id, status_id = server.call(_deal_objects(app, record_id, host_id))
    mypage_token, request_id = server.call(_mypage_objects(app, customer_id, document_id))
    assert (await guest.http.get(f"/my/{mypage_token}")).status_code == 303  # the call's browser: no code
    quote_id, quote_token, _move = server.call(_quote_objects(app, deal_id, held=False))

    async def fresh_quote() -> str:
        return str(server.call(_quote_objects(app, deal_id, held=False))[0])

    held: dict[str, str] = {}

    async def held_quote() -> str:  # the quote of a fresh held move; its move id is read next
        made_quote, _token, move_id = server.call(_quote_objects(app, deal_id, held=True))
        held["move_id"] = str(move_id)
        return str(made_quote)

    async def held_move() -> str:
        return held.pop("move_id")

    photo = card_key(host_id, "photo.jpg")
    assert photo is not None
    server.call(services(app).storage.put(photo, b"\xff\xd8\xff\xe0 not checked when served"))
    file_id = str(json.loads((await guest.http.get(f"/api/rooms/{room_id}/files")).text)["files"][0]["id"])

    # Join links come from another host of acme: whoever accepts one becomes the guest of that host's
    # room, which must not make them a guest of the walked meeting's host.
    linker = Browser(server.url)
    await linker.sign_in("linker@acme.example", "long-enough-1")
    people["linker"] = linker

    async def link_token() -> str:
        phone = "090-1234-5678"
        assert (await linker.post_json("/api/rooms/link", {"phone": phone})).status_code == 201

        async def last_sms() -> str:
            async with services(app).sessions() as db:
                message = await db.scalar(select(SmsMessage).order_by(SmsMessage.id.desc()).limit(1))
                assert message is not None
                return message.body

        found = re.search(r"/j/([\w-]+)", server.call(last_sms()))
        assert found
        return found.group(1)

    async def document() -> str:  # deleted at once: a row is enough (no rendering worker to start)
        async def add() -> int:
            async with services(app).sessions.begin() as db:
                made = Document(org_id=spare[1], owner_id=host_id, name="throwaway.pdf", pages=1, rendered=1)
                made.status = DocumentStatus.READY
                db.add(made)
                await db.flush()
                return made.id

        return str(server.call(add()))

    async def template(owner: int | None = host_id) -> str:
        async def add() -> int:
            async with services(app).sessions.begin() as db:
                made = MemoTemplate(org_id=spare[1], owner_id=owner, title="x", body="x")
                db.add(made)
                await db.flush()
                return made.id

        return str(server.call(add()))

    async def shared_template() -> str:
        return await template(owner=None)

    return World(
        values={
            "slug": "acme",
            "room_id": room_id,
            "file_id": file_id,
            "document_id": str(document_id),
            "n": "1",
            "template_id": str(template_id),
            "user_id": str(host_id),
            "slot": "photo",
            "record_id": str(record_id),
            "recording_id": await recording(),
            "customer_id": str(customer_id),
            "deal_id": str(deal_id),
            "message_id": str(message_id),
            "status_id": str(status_id),
            "survey": "desire",
            "link_token": mypage_token,
            "request_id": str(request_id),
            "quote_id": str(quote_id),
            "quote_token": quote_token,
        },
        fresh={
            "token": link_token,
            "/api/documents/{document_id}/delete": document,
            "/memo-templates/{template_id}/delete": template,
            "/memo-templates/{template_id}/default": shared_template,
            "/admin/users/{user_id}/deactivate": lambda: _value(spare[0]),
            "/admin/users/{user_id}/activate": lambda: _value(spare[0]),
            "/api/card/images/{slot}/delete": lambda: _value("2"),
            "/records/{record_id}/recordings/{recording_id}/delete": recording,
            "/quotes/{quote_id}/withdraw": fresh_quote,
            "/quotes/{quote_id}/moves/{move_id}/approve": held_quote,
            "move_id": held_move,
        },
        traces=[room_id, "秘密商事", "acme-secret-doc", "acme-secret-file", "acme-secret-memo", "秘密顧客"],
    )


async def _deal_objects(app: Starlette, record_id: int, host_id: int) -> tuple[int, int, int, int]:
    """Acme's host's customer (of the walked meeting), a deal of theirs and a notice already sent."""
    async with services(app).sessions.begin() as db:
        record = await db.get(MeetingRecord, record_id)
        assert record is not None
        customer = Customer(org_id=record.org_id, owner_id=host_id, name="秘密顧客", phone="+819087654321")
        db.add(customer)
        await db.flush()
        await customers.attach_meeting(db, record_id, customer.id)
        deal = await pipeline.open_deal(
            db, record.org_id, customer.id, host_id, "秘密顧客の案件", record.started_at
        )
        message = OutboxMessage(
            org_id=record.org_id,
            deal_id=deal.id,
            message_id="walk@tsunagu.invalid",
            channel="sms",
            to=customer.phone,
            body="秘密顧客",
            status=OutboxStatus.SENT,
        )
        db.add(message)
        await db.flush()
        return customer.id, deal.id, message.id, deal.status_id


async def _mypage_objects(app: Starlette, customer_id: int, document_id: int) -> tuple[str, int]:
    """A link to the walked customer's マイページ, the host's document left there, a deletion request."""
    async with services(app).sessions.begin() as db:
        customer = await db.get(Customer, customer_id)
        assert customer is not None
        now = datetime.fromtimestamp(services(app).clock(), UTC)
        issued = await mypage_links.issue(db, customer.org_id, customer.id, None, now, 21)
        db.add(
            LeftDocument(
                org_id=customer.org_id, customer_id=customer.id, document_id=document_id, left_at=now
            )
        )
        asked = await deletion.ask(db, customer, "秘密顧客", now)
        assert asked is not None
        return issued.token, asked.id


async def _quote_objects(app: Starlette, deal_id: int, held: bool) -> tuple[int, str, int]:
    """A sent quote of acme's deal (its title no trace: the link's holder may read it), and with ``held``
    a staffed negotiation whose host's move waits for approval: (quote id, token, held move id or 0)."""
    async with services(app).sessions.begin() as db:
        deal = await db.get(Deal, deal_id)
        assert deal is not None
        quote = await quotes.new_quote(db, deal, deal.host_id, deal.created_at)
        quote.title = "walk quote"
        await quotes.replace_items(db, quote, [quotes.ItemInput(None, "walk item", 1, 1000)])
        token = await quotes.send(db, quote, datetime.fromtimestamp(services(app).clock(), UTC), 21)
        move_id = 0
        if held:
            quote.negotiation, quote.state = Negotiation.STAFFED, QuoteState.NEGOTIATING
            now = datetime.fromtimestamp(services(app).clock(), UTC)
            db.add(
                QuoteMove(
                    quote_id=quote.id,
                    seq=1,
                    round=1,
                    side=Side.CUSTOMER,
                    kind=MoveKind.COUNTER,
                    amount=900,
                    at=now,
                )
            )
            move = QuoteMove(
                quote_id=quote.id,
                seq=2,
                round=2,
                side=Side.HOST,
                kind=MoveKind.COUNTER,
                amount=950,
                state=MoveState.HELD,
                at=now,
            )
            db.add(move)
            await db.flush()
            move_id = move.id
        return quote.id, token, move_id


async def _value(value: object) -> str:
    return str(value)


async def _spare_host(app: Starlette) -> tuple[int, int]:
    """A host for the admin to deactivate and activate again, and acme's org id; and a host who sends the
    join links (signed in as ``linker@acme.example``)."""
    async with services(app).sessions.begin() as db:
        org = await accounts.org_by_slug(db, "acme")
        await accounts.add_user(db, org, "linker@acme.example", "linker", Role.HOST, "long-enough-1")
        user = await accounts.add_user(db, org, "spare@acme.example", "spare", Role.HOST, "long-enough-1")
        return user.id, org.id


async def _path(world: World, route_path: str) -> str:
    async def value(match: re.Match[str]) -> str:
        name = match.group(1)
        fresh = ("document_id", "template_id", "user_id", "slot", "recording_id", "quote_id")
        if route_path in world.fresh and name in fresh:
            return await world.fresh[route_path]()
        if name in world.fresh and name not in world.values:
            return await world.fresh[name]()
        assert name in world.values, f"{route_path}: no object for the parameter {name!r}"
        return world.values[name]

    parts = []
    last = 0
    for match in re.finditer(r"{(\w+)(?::\w+)?}", route_path):
        parts += [route_path[last : match.start()], await value(match)]
        last = match.end()
    return "".join([*parts, route_path[last:]])


async def _websocket(person: Browser, path: str) -> int | str:
    """The first frame's type, or the close code when the server closes first."""
    try:
        async with person.websocket(path, subprotocols=[SUBPROTOCOL]) as ws:
            return str(json.loads(await asyncio.wait_for(ws.recv(), 5))["type"])
    except ConnectionClosed as closed:
        return int(closed.rcvd.code) if closed.rcvd else -1


async def _request(person: Browser, method: str, path: str) -> Any:
    if method == "GET":
        return await person.http.get(path, headers={"Accept": "text/html"})
    headers = {"X-CSRF-Token": person.csrf}
    if path.startswith("/api/"):  # an empty body: an upload refused as empty, JSON that says nothing
        json_headers = {**headers, "Accept": "application/json", "Content-Type": "application/json"}
        return await person.http.post(path, content=b"", headers=json_headers)
    data = {"email": "nobody@acme.example", "password": "wrong-password"} if path == "/login" else {}
    return await person.http.post(path, data=data, headers=headers)


@pytest.mark.timeout(300)
async def test_every_route_answers_each_person_as_expected(live_server: LiveServer) -> None:
    logins = {
        "host": "host@acme.example",
        "other_host": "host2@acme.example",
        "manager": "boss@acme.example",
        "admin": "admin@acme.example",
    }
    roles = {"host": Role.HOST, "other_host": Role.HOST, "manager": Role.MANAGER, "admin": Role.ADMIN}
    live_server.call(seed_org(live_server.app, "acme", {logins[p]: roles[p] for p in logins}))
    live_server.call(seed_org(live_server.app, "other", {"admin@other.example": Role.ADMIN}))
    people = {name: Browser(live_server.url) for name in PEOPLE}
    try:
        for name, email in {**logins, "other_admin": "admin@other.example"}.items():
            await people[name].sign_in(email)
        world = await _world(live_server, people)

        walk: list[tuple[str, str, str]] = []  # (method, route path, concrete path or "")
        for route in live_server.app.routes:
            if isinstance(route, Mount):
                walk.append(("GET", route.path, STATIC_FILE))
            elif isinstance(route, WebSocketRoute):
                walk.append(("WS", route.path, ""))
            elif isinstance(route, Route):
                walk += [(m, route.path, "") for m in sorted(route.methods or ()) if m != "HEAD"]
        # WebSockets first, in route order (the lobby admits the guest only while its room still waits, and
        # only the guest holds a guest token until the walk opens the guest pages for everyone).
        walk.sort(key=lambda step: (step[0] != "WS", step[1] in LAST))
        seen, wrong = set(), []
        for method, route_path, concrete in walk:
            key = (method, re.sub(r"{(\w+):\w+}", r"{\1}", route_path))
            assert key in EXPECTED, f"{method} {route_path}: add an entry to EXPECTED (who may use it?)"
            seen.add(key)
            for person, expected in zip(PEOPLE, EXPECTED[key], strict=True):
                browser = people[person]
                path = concrete or await _path(world, key[1])
                if method == "WS":
                    got: int | str = await _websocket(browser, path)
                else:
                    response = await _request(browser, method, path)
                    got = response.status_code
                    if got == 200 and person in ("other_admin", "other_host"):
                        shown = [trace for trace in world.traces if trace in response.text]
                        assert not shown, f"{method} {path} shows {person} another's {shown}"
                if got != expected:
                    wrong.append(f"{method} {path} as {person}: {got}, expected {expected}")
        assert not wrong, "\n".join(wrong)
        assert seen == set(EXPECTED), f"entries for routes that no longer exist: {set(EXPECTED) - seen}"
    finally:
        for browser in people.values():
            await browser.aclose()
