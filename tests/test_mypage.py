"""The guest マイページ over HTTP, in process (the app as ``tsunagu serve`` builds it, a hand-moved clock):
links sent through the outbox, the one-time code (10 minutes, 5 tries, then locked until a new code, also
when 20 guesses arrive at once), revoked and expired links, sessions that expire and end everywhere, what
the org lets customers see, surveys, deletion requests, and one customer never reaching another's things."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from core.clock import ManualClock
from deals import pipeline, quotes, surveys
from deals.models import Customer, CustomerMeeting, Deal, OutboxMessage, Survey
from deals.quote_models import Quote
from documents.models import Document, DocumentStatus
from documents.storage import DocumentStorage
from mypage import left, links
from mypage.models import MypageCode
from recordings.files import RoomFileStorage, add_room_file
from recordings.models import MeetingRecord
from signaling.models import JoinedVia, RoomRow
from signaling.rooms import create_room, token_hash
from store.migrate import upgrade
from store.models import Role
from tests.conftest import make_client
from tests.helpers import Seeded, csrf_from, seed_org, sign_in
from web.app import create_app
from web.services import services
from web.settings import Settings

PHONE = "+819012345678"
PDF = b"%PDF-1.4 left for the customer"


@dataclass
class Meeting:
    customer_id: int
    record_id: int
    room_id: str
    file_id: int
    body: bytes


async def _customer_with_meeting(
    app: Starlette, seeded: Seeded, phone: str, memo: str, body: bytes, host: str = "host@acme.example"
) -> Meeting:
    async with services(app).sessions.begin() as db:
        room, _record = await create_room(
            db,
            org_id=seeded.org_id,
            host_id=seeded.users[host],
            via=JoinedVia.NUMBER,
            guest_token="",
            camera=True,
            recording=False,
            home_node="test",
            now=0,
        )
        room_id = room.id
    async with services(app).sessions.begin() as db:
        record = await db.scalar(select(MeetingRecord).where(MeetingRecord.room_id == room_id))
        assert record is not None
        record.memo = memo
        customer = Customer(
            org_id=seeded.org_id, owner_id=seeded.users[host], name=f"顧客{phone[-4:]}", phone=phone
        )
        db.add(customer)
        await db.flush()
        db.add(CustomerMeeting(record_id=record.id, customer_id=customer.id))
        row = await add_room_file(
            db,
            room_id=room_id,
            org_id=seeded.org_id,
            sender="host",
            name=f"見積{phone[-4:]}.bin",
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
        )
        storage = services(app).storage
        await storage.put(RoomFileStorage(storage).key(seeded.org_id, room_id, row.id), body)
        return Meeting(customer.id, record.id, room_id, row.id, body)


async def _acme(app: Starlette) -> tuple[Seeded, Meeting]:
    seeded = await seed_org(app, "acme", {"host@acme.example": Role.HOST, "admin@acme.example": Role.ADMIN})
    return seeded, await _customer_with_meeting(
        app, seeded, PHONE, "次回は見積りを送付", b"\x00\x01acme" * 300
    )


async def _deal(db: AsyncSession, deal_id: int) -> Deal:
    found = await db.get(Deal, deal_id)
    assert found is not None
    return found


async def _sent_quote(db: AsyncSession, deal_id: int, title: str, now: datetime) -> Quote:
    deal = await _deal(db, deal_id)
    quote = await quotes.new_quote(db, deal, deal.host_id, now)
    quote.title = title
    await quotes.replace_items(db, quote, [quotes.ItemInput(None, "作業費", 2, 15_000)])
    await quotes.send(db, quote, now, 21)
    return quote


async def _last_outbox(app: Starlette) -> OutboxMessage:
    async with services(app).sessions() as db:
        found = await db.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1))
        assert found is not None
        return found


async def _send_link(app: Starlette, host: httpx.AsyncClient, customer_id: int) -> str:
    """The host sends the page link from the customer's page; the token as the customer receives it."""
    page = await host.get(f"/customers/{customer_id}")
    sent = await host.post(f"/customers/{customer_id}/mypage/send", data={"csrf_token": csrf_from(page.text)})
    assert sent.status_code == 303, sent.text
    message = await _last_outbox(app)
    assert message.channel == "sms" and message.to == PHONE
    found = re.search(r"/my/([\w-]+)", message.body)
    assert found, message.body
    return found.group(1)


async def _issue_link(app: Starlette, customer_id: int) -> str:
    """A link made as the send route makes it (tests where sending is not the point skip the host)."""
    async with services(app).sessions.begin() as db:
        customer = await db.get(Customer, customer_id)
        assert customer is not None
        now = datetime.fromtimestamp(services(app).clock(), UTC)
        return (await links.issue(db, customer.org_id, customer.id, None, now, 21)).token


@contextlib.asynccontextmanager
async def _host(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as host:
        assert (await sign_in(host, "host@acme.example")).status_code == 303
        yield host


async def _ask_code(app: Starlette, browser: httpx.AsyncClient, token: str) -> str:
    page = await browser.get(f"/my/{token}")
    assert page.status_code == 200 and f'action="/my/{token}/code"' in page.text
    sent = await browser.post(f"/my/{token}/code", data={"csrf_token": csrf_from(page.text)})
    assert sent.status_code == 200 and "/verify" in sent.text, sent.text
    found = re.search(r"\b(\d{6})\b", (await _last_outbox(app)).body)
    assert found
    return found.group(1)


async def _verify(browser: httpx.AsyncClient, token: str, code: str) -> httpx.Response:
    page = await browser.get(f"/my/{token}")
    return await browser.post(f"/my/{token}/verify", data={"code": code, "csrf_token": csrf_from(page.text)})


@contextlib.asynccontextmanager
async def _signed_in_customer(app: Starlette, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as browser:
        code = await _ask_code(app, browser, token)
        assert (await _verify(browser, token, code)).status_code == 303
        yield browser


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_fresh_browser_needs_the_code_and_five_wrong_tries_lock_it(
    app: Starlette, clock: ManualClock
) -> None:
    _seeded, meeting = await _acme(app)
    async with _host(app) as host, make_client(app) as phone:
        token = await _send_link(app, host, meeting.customer_id)
        assert (await phone.get("/my")).status_code == 401  # no session yet: how to come back
        code = await _ask_code(app, phone, token)
        for left in (4, 3, 2, 1):
            wrong = await _verify(phone, token, _wrong(code))
            assert wrong.status_code == 400 and f"{left}" in wrong.text
        assert (await _verify(phone, token, _wrong(code))).status_code == 429  # the fifth: locked
        assert (await _verify(phone, token, code)).status_code == 429  # even the right one, now
        assert (await phone.get("/my")).status_code == 401

        expired = await _ask_code(app, phone, token)  # a new code unlocks, for 10 minutes
        clock.advance(10 * 60 + 1)
        assert (await _verify(phone, token, expired)).status_code == 400
        fresh = await _ask_code(app, phone, token)
        entered = await _verify(phone, token, fresh)
        assert entered.status_code == 303 and entered.headers["location"] == "/my"
        cookie = entered.headers["set-cookie"]
        assert "tsunagu_mypage=" in cookie and "Path=/my" in cookie and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        mine = await phone.get("/my")
        assert mine.status_code == 200 and "次回は見積りを送付" in mine.text
        assert "private, no-store" in mine.headers["cache-control"]
        download = await phone.get(f"/my/files/{meeting.file_id}")
        assert download.status_code == 200 and download.content == meeting.body
        card = await phone.get(f"/my/meetings/{meeting.record_id}/card.vcf")
        assert card.status_code == 200 and card.text.startswith("BEGIN:VCARD")
        # The マイページ cookie is no host session, and a host session opens no マイページ.
        assert (await phone.get("/customers", headers={"Accept": "text/html"})).status_code == 303
        assert (await host.get("/my")).status_code == 401
        assert (await host.get(f"/my/files/{meeting.file_id}")).status_code == 404

    async with make_client(app) as laptop:  # five codes an hour per link (MYPAGE_CODES_PER_HOUR)
        for _ in range(2):  # three were sent above
            await _ask_code(app, laptop, token)
        page = await laptop.get(f"/my/{token}")
        refused = await laptop.post(f"/my/{token}/code", data={"csrf_token": csrf_from(page.text)})
        assert refused.status_code == 429
        no_csrf = await laptop.post(f"/my/{token}/verify", data={"code": "123456"})
        assert no_csrf.status_code == 403


async def test_twenty_guesses_at_once_get_no_more_than_five_tries(
    any_database_url: str, settings: Settings, clock: ManualClock
) -> None:
    """On SQLite and PostgreSQL: each guess claims a try in one conditional UPDATE before it is compared."""
    await asyncio.to_thread(upgrade, any_database_url)
    app = create_app(replace(settings, database_url=any_database_url), clock=clock)
    async with app.router.lifespan_context(app), make_client(app) as phone:
        _seeded, meeting = await _acme(app)
        token = await _issue_link(app, meeting.customer_id)
        code = await _ask_code(app, phone, token)
        csrf = csrf_from((await phone.get(f"/my/{token}")).text)
        guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 21)]  # all wrong
        barrier = asyncio.Barrier(len(guesses))

        async def guess(value: str) -> int:
            await barrier.wait()
            response = await phone.post(f"/my/{token}/verify", data={"code": value, "csrf_token": csrf})
            return response.status_code

        answers = await asyncio.gather(*(guess(value) for value in guesses))
        assert sorted(answers) == [400] * 4 + [429] * 16, answers  # tries 1-4 wrong, the 5th locks
        async with services(app).sessions() as db:
            tries = await db.scalar(select(MypageCode.tries).order_by(MypageCode.id.desc()).limit(1))
        assert tries == 5
        assert (await _verify(phone, token, code)).status_code == 429


async def test_the_call_s_browser_revoking_expiry_and_signing_out_everywhere(
    app: Starlette, clock: ManualClock
) -> None:
    _seeded, meeting = await _acme(app)
    token = await _issue_link(app, meeting.customer_id)
    async with make_client(app) as phone:  # the browser of the call opens the link without a code
        await phone.get("/g/acme")  # the guest page gives this browser its guest token, as in the call
        signed = phone.cookies["tsunagu_session"].split(".")[0]
        guest = json.loads(base64.b64decode(signed + "=" * (-len(signed) % 4)))["guest"]
        async with services(app).sessions.begin() as db:
            await db.execute(
                update(RoomRow)
                .where(RoomRow.id == meeting.room_id)
                .values(guest_token_hash=token_hash(guest))
            )
        opened = await phone.get(f"/my/{token}")
        assert opened.status_code == 303 and opened.headers["location"] == "/my"
        assert (await phone.get("/my")).status_code == 200

        async with _signed_in_customer(app, token) as other:  # a second device, with a code
            page = await other.get("/my")
            out = await other.post("/my/sign-out-everywhere", data={"csrf_token": csrf_from(page.text)})
            assert out.status_code == 303
            assert (await other.get("/my")).status_code == 401
        assert (await phone.get("/my")).status_code == 401  # everywhere

        assert (await phone.get(f"/my/{token}")).status_code == 303  # back in, then the host revokes
        async with _host(app) as host:
            page = await host.get(f"/customers/{meeting.customer_id}")
            revoke = f"/customers/{meeting.customer_id}/mypage/revoke"
            assert (await host.post(revoke, data={"csrf_token": csrf_from(page.text)})).status_code == 303
        assert (await phone.get("/my")).status_code == 401  # revoking also signs out
        closed = await phone.get(f"/my/{token}")
        assert closed.status_code == 410 and "取り消" in closed.text

        newer = await _issue_link(app, meeting.customer_id)
        assert (await phone.get(f"/my/{newer}")).status_code == 303
        clock.advance(72 * 3600 + 1)  # MYPAGE_SESSION_HOURS
        assert (await phone.get("/my")).status_code == 401
        clock.advance(21 * 24 * 3600)  # MYPAGE_LINK_DAYS
        expired = await phone.get(f"/my/{newer}")
        assert expired.status_code == 410 and "有効期限" in expired.text
        assert (await phone.get("/my/not-a-link-we-sent")).status_code == 404


async def test_isolation_what_the_org_shows_surveys_and_deletion_requests(app: Starlette) -> None:
    seeded, mine = await _acme(app)
    theirs = await _customer_with_meeting(app, seeded, "+819099998888", "他人のメモ", b"theirs")
    other_org = await seed_org(app, "other", {"host@other.example": Role.HOST})
    elsewhere = await _customer_with_meeting(
        app, other_org, PHONE, "他社のメモ", b"elsewhere", "host@other.example"
    )
    async with services(app).sessions.begin() as db:
        host_id = seeded.users["host@acme.example"]
        opened = []
        for customer_id in (mine.customer_id, theirs.customer_id):
            deal = await pipeline.open_deal(
                db, seeded.org_id, customer_id, host_id, "新車", datetime.now(UTC)
            )
            deal.status_id = next(
                s.id for s in await pipeline.statuses(db, seeded.org_id) if s.survey == Survey.QUOTE
            )
            opened.append(deal.id)
        deal_id, their_deal = opened
        # Quotes: this customer's sent one is listed; its draft, the other customer's and the other org's not.
        clock_now = datetime.fromtimestamp(services(app).clock(), UTC)  # the app's time: not expired
        my_quote = await _sent_quote(db, deal_id, "私の見積り", clock_now)
        await quotes.new_quote(db, await _deal(db, deal_id), host_id, datetime.now(UTC))  # the draft
        gone = [  # not to answer any more: not listed (their links show the clear page)
            await _sent_quote(db, deal_id, "期限切れの見積り", clock_now - timedelta(days=21)),
            await _sent_quote(db, deal_id, "撤回した見積り", clock_now),
        ]
        await quotes.withdraw(db, gone[1])
        their_quote = await _sent_quote(db, their_deal, "他人の見積り", clock_now)
        other_host = other_org.users["host@other.example"]
        other_deal = await pipeline.open_deal(
            db, other_org.org_id, elsewhere.customer_id, other_host, "他社", datetime.now(UTC)
        )
        other_quote = await _sent_quote(db, other_deal.id, "他社の見積り", clock_now)
        # Two ready documents of the library: one left for this customer, one for the other.
        documents = [
            Document(org_id=seeded.org_id, owner_id=host_id, name=name, pages=1, rendered=1, size=len(pdf))
            for name, pdf in (("会社案内.pdf", PDF), ("他人の資料.pdf", b"%PDF theirs"))
        ]
        for document in documents:
            document.status = DocumentStatus.READY
        db.add_all(documents)
        await db.flush()
        storage = services(app).storage
        for document, pdf in zip(documents, (PDF, b"%PDF theirs"), strict=True):
            await storage.put(DocumentStorage(storage).original(seeded.org_id, document.id), pdf)
        now = datetime.now(UTC)
        for customer_id, document in zip((mine.customer_id, theirs.customer_id), documents, strict=True):
            customer = await db.get(Customer, customer_id)
            assert customer is not None
            await left.leave(db, customer, host_id, document.id, now)
        left_id = documents[0].id
    async with _signed_in_customer(app, await _issue_link(app, mine.customer_id)) as browser:
        page = await browser.get("/my")
        assert "次回は見積りを送付" in page.text
        assert "他人のメモ" not in page.text and "他社のメモ" not in page.text
        assert "会社案内.pdf" in page.text and "他人の資料" not in page.text
        assert "私の見積り" in page.text and f'href="/my/quotes/{my_quote.id}"' in page.text
        assert "他人の見積り" not in page.text and "他社の見積り" not in page.text
        assert "期限切れの見積り" not in page.text and "撤回した見積り" not in page.text
        assert str(their_quote.token) not in page.text and str(other_quote.token) not in page.text
        downloaded = await browser.get(f"/my/documents/{left_id}.pdf")
        assert downloaded.status_code == 200 and downloaded.content == PDF
        highest = max(
            (mine.file_id, theirs.file_id, elsewhere.file_id, elsewhere.record_id, left_id, other_quote.id)
        )
        for n in range(0, highest + 3):  # every id: only this customer's own answer
            opened_quote = await browser.get(f"/my/quotes/{n}")
            own = {q.id: q.token for q in (my_quote, *gone)}
            if n in own:
                assert opened_quote.status_code == 303
                assert opened_quote.headers["location"] == f"/q/{own[n]}"
            else:  # the draft, the other customer's, the other org's: never reached
                assert opened_quote.status_code == 404, n
            assert (await browser.get(f"/my/files/{n}")).status_code == (200 if n == mine.file_id else 404)
            own_meeting = 200 if n == mine.record_id else 404
            assert (await browser.get(f"/my/meetings/{n}/memo.txt")).status_code == own_meeting
            assert (await browser.get(f"/my/meetings/{n}/card.vcf")).status_code == own_meeting
            own_document = 200 if n == left_id else 404
            assert (await browser.get(f"/my/documents/{n}.pdf")).status_code == own_document

        csrf = csrf_from(page.text)
        assert f'action="/my/surveys/{deal_id}"' in page.text
        assert (await browser.post(f"/my/surveys/{their_deal}", data={"csrf_token": csrf})).status_code == 404
        too_many = ["価格", "納期", "担当者の対応", "下取り価格"]
        refused = await browser.post(f"/my/surveys/{deal_id}", data={"csrf_token": csrf, "answer": too_many})
        assert refused.status_code == 400
        answer = {"csrf_token": csrf, "answer": ["価格", "納期"]}
        assert (await browser.post(f"/my/surveys/{deal_id}", data=answer)).status_code == 303
        async with services(app).sessions() as db:
            assert (await surveys.answers(db, [deal_id]))[deal_id][Survey.QUOTE] == ["価格", "納期"]
        assert f'action="/my/surveys/{deal_id}"' not in (await browser.get("/my")).text

        asked = await browser.post("/my/deletion", data={"csrf_token": csrf, "message": "退会します"})
        assert asked.status_code == 303
        notice = await _last_outbox(app)
        assert notice.channel == "email" and notice.to == "admin@acme.example" and "退会します" in notice.body
        again = await browser.post("/my/deletion", data={"csrf_token": csrf, "message": "退会します"})
        assert again.status_code == 303 and (await _last_outbox(app)).id == notice.id  # told once

        async with make_client(app) as admin:
            assert (await sign_in(admin, "admin@acme.example")).status_code == 303
            listed = await admin.get("/mypage-settings")
            assert "退会します" in listed.text and "顧客5678" in listed.text
            saved = await admin.post(  # memo and files off; documents left stay on
                "/mypage-settings", data={"csrf_token": csrf_from(listed.text), "show_documents": "1"}
            )
            assert saved.status_code == 303
        page = await browser.get("/my")
        assert page.status_code == 200 and "次回は見積りを送付" not in page.text
        assert (await browser.get(f"/my/files/{mine.file_id}")).status_code == 404
        assert (await browser.get(f"/my/meetings/{mine.record_id}/memo.txt")).status_code == 404
        assert (await browser.get(f"/my/documents/{left_id}.pdf")).status_code == 200  # still shown
