"""What a customer's page shows, one function per section. Every function takes the customer whose page it
is and returns only that customer's things, within the org's choices (:func:`visibility`); the ``*_of``
functions fetch one thing for a download and raise NotFound for anything else (another customer's meeting,
file or document: never revealed). Recordings are never a section.

Sections: meetings (date, host, company) with each memo and the files exchanged; the host's card (per
meeting); documents left; quotes to answer (each opened through the customer's own check, then the quote's
link); surveys to fill in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from deals import negotiation, pipeline, quotes, surveys
from deals.models import Customer, CustomerMeeting, Deal, Survey
from deals.quote_models import Quote, QuoteState, Side
from documents.models import Document, DocumentStatus
from mypage.models import LeftDocument, MypageSettings
from recordings.files import room_files
from recordings.models import MeetingRecord, RoomFile
from signaling.rooms import memo_lines
from store.models import BusinessCard, Org, User

ASKED = (Survey.QUOTE, Survey.CLOSE, Survey.END)  # statuses whose survey the customer may answer


@dataclass(frozen=True)
class Visibility:
    """The org's choices; recordings have no switch: customers never see them."""

    show_memo: bool = True
    show_files: bool = True
    show_documents: bool = True


async def visibility(db: AsyncSession, org_id: int) -> Visibility:
    row = await db.get(MypageSettings, org_id)
    return Visibility() if row is None else Visibility(row.show_memo, row.show_files, row.show_documents)


async def set_visibility(db: AsyncSession, org_id: int, chosen: Visibility) -> None:
    row = await db.get(MypageSettings, org_id)
    if row is None:
        row = MypageSettings(org_id=org_id)
        db.add(row)
    row.show_memo, row.show_files, row.show_documents = (
        chosen.show_memo,
        chosen.show_files,
        chosen.show_documents,
    )
    await db.flush()


# --- meetings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingView:
    record_id: int
    started_at: datetime
    host_name: str
    company: str
    memo: str | None  # None: the org does not show memos
    files: list[RoomFile] = field(default_factory=list)
    has_card: bool = False


async def _records(db: AsyncSession, customer: Customer) -> list[MeetingRecord]:
    return list(
        await db.scalars(
            select(MeetingRecord)
            .join(CustomerMeeting, CustomerMeeting.record_id == MeetingRecord.id)
            .where(CustomerMeeting.customer_id == customer.id, MeetingRecord.org_id == customer.org_id)
            .order_by(MeetingRecord.started_at.desc(), MeetingRecord.id.desc())
        )
    )


async def memo_text(db: AsyncSession, record: MeetingRecord) -> str:
    """The memo's final text; while no final text was kept, the text rebuilt from its stored updates."""
    if record.memo:
        return record.memo
    return "\n".join(line.text for line in await memo_lines(db, record.room_id)).rstrip("\n")


async def meetings(db: AsyncSession, customer: Customer, shown: Visibility) -> list[MeetingView]:
    """The customer's meetings, newest first: date, host, company, and, as the org allows, memo and files."""
    org = await db.get(Org, customer.org_id)
    assert org is not None
    found = []
    for record in await _records(db, customer):
        host = await db.get(User, record.host_id) if record.host_id else None
        card = await db.get(BusinessCard, record.host_id) if record.host_id else None
        files = await room_files(db, record.room_id) if shown.show_files else []
        found.append(
            MeetingView(
                record_id=record.id,
                started_at=record.started_at,
                host_name=host.display_name if host else "",
                company=(card.company if card and card.company else org.name),
                memo=await memo_text(db, record) if shown.show_memo else None,
                files=[f for f in files if f.org_id == customer.org_id],
                has_card=host is not None and host.org_id == customer.org_id,
            )
        )
    return found


async def meeting_of(db: AsyncSession, customer: Customer, record_id: int) -> MeetingRecord:
    record = await db.scalar(
        select(MeetingRecord)
        .join(CustomerMeeting, CustomerMeeting.record_id == MeetingRecord.id)
        .where(
            MeetingRecord.id == record_id,
            CustomerMeeting.customer_id == customer.id,
            MeetingRecord.org_id == customer.org_id,
        )
    )
    if record is None:
        raise NotFound()
    return record


async def file_of(db: AsyncSession, customer: Customer, file_id: int, shown: Visibility) -> RoomFile:
    """A file exchanged in one of the customer's meetings, when the org shows files."""
    if not shown.show_files:
        raise NotFound()
    found = await db.scalar(
        select(RoomFile)
        .join(MeetingRecord, MeetingRecord.room_id == RoomFile.room_id)
        .join(CustomerMeeting, CustomerMeeting.record_id == MeetingRecord.id)
        .where(
            RoomFile.id == file_id,
            RoomFile.org_id == customer.org_id,
            MeetingRecord.org_id == customer.org_id,
            CustomerMeeting.customer_id == customer.id,
        )
    )
    if found is None:
        raise NotFound()
    return found


async def host_of(db: AsyncSession, customer: Customer, record_id: int) -> User:
    """The host of one of the customer's meetings (whose card the page offers)."""
    record = await meeting_of(db, customer, record_id)
    host = await db.get(User, record.host_id) if record.host_id else None
    if host is None or host.org_id != customer.org_id:
        raise NotFound()
    return host


# --- documents left ----------------------------------------------------------------------------------------


async def documents_left(db: AsyncSession, customer: Customer, shown: Visibility) -> list[Document]:
    if not shown.show_documents:
        return []
    return list(
        await db.scalars(
            select(Document)
            .join(LeftDocument, LeftDocument.document_id == Document.id)
            .where(
                LeftDocument.customer_id == customer.id,
                Document.org_id == customer.org_id,
                Document.status == DocumentStatus.READY,
            )
            .order_by(LeftDocument.left_at.desc(), LeftDocument.id.desc())
        )
    )


async def document_of(db: AsyncSession, customer: Customer, document_id: int, shown: Visibility) -> Document:
    for document in await documents_left(db, customer, shown):
        if document.id == document_id:
            return document
    raise NotFound()


# --- quotes to answer --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuoteToAnswer:
    """One of the customer's sent quotes. ``actionable``: it waits for the customer (sent and not expired,
    or a negotiation at the customer's turn); otherwise it is shown read-only (answered, or waiting for the
    company's move). ``total`` is the amount on the table: the quote's total, the company's last proposal in
    a negotiation, or the total agreed once answered (None: declined)."""

    quote_id: int
    title: str
    total: int | None
    valid_until: datetime | None
    state: QuoteState
    actionable: bool

    @property
    def url(self) -> str:
        """The マイページ's own door to the quote: checked against the signed-in customer, then the quote's
        link (/q/{token}), which is the customer's anyway."""
        return f"/my/quotes/{self.quote_id}"


def _customer_quotes(customer: Customer) -> Select[Quote]:
    """The customer's quotes that were ever sent (a draft has no link), through the customer's own deals."""
    return (
        select(Quote)
        .join(Deal, Deal.id == Quote.deal_id)
        .where(
            Deal.customer_id == customer.id,
            Deal.org_id == customer.org_id,
            Quote.org_id == customer.org_id,
            Quote.token.is_not(None),
            Quote.state != QuoteState.DRAFT,
        )
    )


async def quotes_to_answer(db: AsyncSession, customer: Customer, now: datetime) -> list[QuoteToAnswer]:
    """The customer's quotes newest first: those waiting for an answer (actionable) and those answered or
    in negotiation (read-only). Withdrawn and expired ones are left out: nothing to do there (the host may
    send a withdrawn one again, and it comes back)."""
    found = []
    for quote in await db.scalars(_customer_quotes(customer).order_by(Quote.sent_at.desc(), Quote.id.desc())):
        if quote.state == QuoteState.WITHDRAWN or (
            quote.state == QuoteState.SENT and quotes.expired(quote, now)
        ):
            continue
        if quote.state == QuoteState.SENT:
            total: int | None = quotes.quote_totals(quote, await quotes.items_of(db, quote.id)).total
            actionable = True
        elif quote.state == QuoteState.NEGOTIATING:
            at = negotiation.position(quote, await negotiation.moves_of(db, quote.id))
            total, actionable = at.amount, at.waiting_for == Side.CUSTOMER
        else:
            total, actionable = quote.accepted_total, False
        valid_until = quote.expires_at if quote.state == QuoteState.SENT else None
        found.append(QuoteToAnswer(quote.id, quote.title, total, valid_until, quote.state, actionable))
    return found


async def quote_link_of(db: AsyncSession, customer: Customer, quote_id: int) -> str:
    """The token of the customer's sent quote ``quote_id`` (any other quote, another customer's included,
    or one never sent: NotFound)."""
    quote = await db.scalar(_customer_quotes(customer).where(Quote.id == quote_id))
    if quote is None or quote.token is None:
        raise NotFound()
    return quote.token


# --- surveys -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyToFill:
    deal_id: int
    deal_title: str
    survey: Survey
    choices: list[str]
    limit: int


async def surveys_to_fill(db: AsyncSession, customer: Customer) -> list[SurveyToFill]:
    """The customer's deals whose status asks a survey (見積り / 成約 / 終了) not answered yet."""
    deals = list(
        await db.scalars(
            select(Deal)
            .where(Deal.customer_id == customer.id, Deal.org_id == customer.org_id)
            .order_by(Deal.updated_at.desc(), Deal.id.desc())
        )
    )
    if not deals:
        return []
    statuses = {s.id: s for s in await pipeline.statuses(db, customer.org_id)}
    answered = await surveys.answers(db, [d.id for d in deals])
    offered = await surveys.choices(db, customer.org_id)
    found = []
    for deal in deals:
        asked = statuses[deal.status_id].survey
        if asked in ASKED and not answered.get(deal.id, {}).get(asked):
            found.append(
                SurveyToFill(deal.id, deal.title, asked, offered.get(asked, []), surveys.LIMITS[asked])
            )
    return found


async def answer_survey(
    db: AsyncSession, customer: Customer, deal_id: int, labels: list[str], now: datetime
) -> None:
    """The customer's answer to a survey it was asked (any other deal: NotFound)."""
    for asked in await surveys_to_fill(db, customer):
        if asked.deal_id == deal_id:
            await surveys.answer(db, customer.org_id, deal_id, asked.survey, labels, now)
            return
    raise NotFound()
