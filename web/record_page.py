"""One meeting record (商談記録): what happened, printable; its 商談先情報 edited after the call; its files.

Shown to the meeting's host and to the org's managers and admins; anybody else gets 404, as if it did not
exist. The page has the memo line by line with who wrote it and when, the files exchanged (downloadable here
by the same people), the documents shown with a per-page dwell chart, the timeline (start, the guest's
agreement, SMS, documents, files, sitting in, end), the guest's acknowledgements and the change log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput, NotFound
from deals import customers
from documents.models import Document
from recordings import acknowledgements, guest_info, sit_ins
from recordings.files import RoomFileStorage, room_file, room_files
from recordings.models import MeetingEvent, MeetingRecord, Recording, RoomFile, SitIn
from recordings.records import dwell_seconds, page_views
from signaling.memo_authors import MemoLine
from signaling.models import RoomRow, RoomState, SmsMessage
from signaling.rooms import at, memo_lines
from store.models import User
from web.admin import SMS_STATUS_LABELS
from web.auth import signed_in
from web.blobs import blob_response
from web.charts import Bar, horizontal_bars
from web.files import DOWNLOAD_HEADERS, content_disposition
from web.i18n import Translator
from web.records import MANAGERS, ROLE_WORDS, VIA_LABELS, duration_text
from web.services import services
from web.templating import render, translator


async def record_for(request: Request) -> MeetingRecord:
    """The record in the path, if the signed-in user may see it (its host, or a manager/admin of its org)."""
    user: User = request.state.user
    db: AsyncSession = request.state.db
    record = await db.get(MeetingRecord, int(request.path_params["record_id"]))
    if record is None or record.org_id != user.org_id:
        raise NotFound()
    if user.role not in MANAGERS and record.host_id != user.id:
        raise NotFound()
    return record


@dataclass(frozen=True)
class Event:
    at: datetime  # JST
    text: str


@dataclass(frozen=True)
class ShownDocument:
    id: int
    name: str
    total: str  # m:ss on screen, all pages
    bars: list[Bar]  # seconds per page
    chart: Markup


AGREED = N_("The customer agreed to the terms of use, the handling of personal data and the privacy policy")
STOPPED_BECAUSE = {
    "host": N_("Recording stopped by the representative"),
    "limit": N_("Recording stopped at its 120-minute limit"),
    "failed": N_("Recording stopped: it could not be written"),
    "ended": N_("Recording stopped: the meeting ended"),
}
CAMERA_STATES = {
    "on": N_("{who}: camera on"),
    "off": N_("{who}: camera off"),
    "paused": N_("{who}: camera paused"),
    "declined": N_("{who}: camera declined"),
    "blocked": N_("{who}: camera blocked by the browser"),
    "none": N_("{who}: no camera"),
}

VIDEO_STATES = {  # signaling.protocol.VideoProblem, or "available"
    "available": N_("{who}: video works"),
    "unsupported": N_("{who}: video unavailable (the browser does not support it)"),
    "network": N_("{who}: video unavailable (the connection did not get through the network)"),
    "camera": N_("{who}: video unavailable (the camera cannot be used)"),
}


def _happened(event: MeetingEvent, _: Translator) -> str:
    """The words for a stored meeting event (signaling.room.EventKind)."""
    who, _space, what = event.detail.partition(" ")
    match event.kind:
        case "recording_started":
            return _("Recording started")
        case "recording_stopped":
            return _(STOPPED_BECAUSE.get(event.detail, STOPPED_BECAUSE["host"]))
        case "recording_seen":
            return _("The customer was shown that the meeting is recorded ({device})", device=event.detail)
        case "camera":
            return _(CAMERA_STATES.get(what, CAMERA_STATES["none"]), who=_(ROLE_WORDS.get(who, who)))
        case "screen" if what == "on":
            return _("{who} started sharing the screen", who=_(ROLE_WORDS.get(who, who)))
        case "screen":
            return _("{who} stopped sharing the screen", who=_(ROLE_WORDS.get(who, who)))
        case "camera_request" if event.detail == "start":
            return _("The representative asked the customer to turn the camera on")
        case "camera_request":
            return _("The representative stopped the customer's camera")
        case "video":
            return _(VIDEO_STATES.get(what, VIDEO_STATES["available"]), who=_(ROLE_WORDS.get(who, who)))
    return event.kind


def _seconds_text(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


async def shown_documents(
    db: AsyncSession, record: MeetingRecord, _: Translator
) -> tuple[list[ShownDocument], list[Event]]:
    """Each document shown, with its dwell per page; and an event for each time one was put on screen."""
    views = await page_views(db, record.room_id)
    ids = list(dict.fromkeys(view.document_id for view in views))
    found = {
        document.id: document
        for document in await db.scalars(
            select(Document).where(Document.org_id == record.org_id, Document.id.in_(ids))
        )
    }
    dwell = dwell_seconds(views)
    names = {d: found[d].name if d in found else _("(deleted document)") for d in ids}
    shown: list[ShownDocument] = []
    for document_id in ids:
        seen = [page for (d, page) in dwell if d == document_id]
        pages = max([found[document_id].pages if document_id in found else 0, *seen])
        bars = [
            Bar(_("p. {page}", page=page), seconds, _seconds_text(seconds))
            for page in range(1, pages + 1)
            for seconds in [dwell.get((document_id, page), 0.0)]
        ]
        title = _("Seconds on screen per page: {name}", name=names[document_id])
        total = _seconds_text(sum(bar.value for bar in bars))
        chart = horizontal_bars(title, bars)
        shown.append(ShownDocument(document_id, names[document_id], total, bars, chart))
    events: list[Event] = []
    previous: int | None = None
    for view in views:
        if view.document_id != previous:
            text = _("Document shown: {name}", name=names[view.document_id])
            events.append(Event(in_jst(view.started_at), text))
        previous = view.document_id
    return shown, events


async def timeline(
    db: AsyncSession, record: MeetingRecord, _: Translator, documents: list[Event], files: list[RoomFile]
) -> tuple[list[Event], list[SitIn]]:
    """The meeting's one timeline, in order: start, agreement, SMS, documents, files, sitting in, recording,
    cameras and screen share, end; and the sit-ins. The replay page shows the same events."""
    how = _(VIA_LABELS.get(record.via, record.via))
    events = [Event(in_jst(record.started_at), _("Meeting started ({how})", how=how))]
    for ack, _texts in await acknowledgements.for_room(db, record.room_id):
        events.append(Event(in_jst(ack.accepted_at), _(AGREED)))
    sms = select(SmsMessage).where(SmsMessage.room_id == record.room_id, SmsMessage.org_id == record.org_id)
    for message in await db.scalars(sms):
        text = _("SMS to {to}: {status}", to=message.to, status=_(SMS_STATUS_LABELS[message.status]))
        events.append(Event(in_jst(message.created_at), text))
    events += documents
    for file in files:
        who = _(ROLE_WORDS.get(file.sender, file.sender))
        text = _("{who} sent the file {name}", who=who, name=file.name)
        events.append(Event(in_jst(file.created_at), text))
    watchers = await sit_ins.for_record(db, record.id)
    for watcher in watchers:
        events.append(Event(in_jst(watcher.started_at), _("{name} sat in", name=watcher.user_name)))
        if watcher.ended_at is not None:
            text = _("{name} stopped sitting in", name=watcher.user_name)
            events.append(Event(in_jst(watcher.ended_at), text))
    happened = select(MeetingEvent).where(MeetingEvent.room_id == record.room_id).order_by(MeetingEvent.id)
    for event in await db.scalars(happened):
        events.append(Event(in_jst(event.at), _happened(event, _)))
    if record.ended_at is not None:
        events.append(Event(in_jst(record.ended_at), _("Meeting ended")))
    events.sort(key=lambda event: event.at)
    return events, watchers


async def memo_with_authors(
    db: AsyncSession, record: MeetingRecord, _: Translator
) -> list[tuple[str, str, datetime | None]]:
    """Each memo line with its authors' labels and when it was first written (JST), from the memo's log
    (signaling/memo_authors.py); a record without a log (made before the memo was kept) shows its text
    without authors."""
    lines = await memo_lines(db, record.room_id)
    while len(lines) > 1 and not lines[-1].text:  # the newline ending the memo makes no line
        lines.pop()
    if not any(line.text for line in lines) and record.memo:
        lines = [MemoLine(text, (), None) for text in record.memo.split("\n")]
    return [
        (
            line.text,
            "・".join(_(ROLE_WORDS[author]) for author in line.authors if author in ROLE_WORDS),
            in_jst(at(line.at)) if line.at is not None else None,
        )
        for line in lines
    ]


async def _page(request: Request, record: MeetingRecord, status_code: int = 200, **context: Any) -> Response:
    db: AsyncSession = request.state.db
    user: User = request.state.user
    _ = translator(request)
    host = await db.get(User, record.host_id) if record.host_id is not None else None
    tags = await guest_info.record_tags(db, record.id)
    files = await room_files(db, record.room_id)
    documents, document_events = await shown_documents(db, record, _)
    events, watchers = await timeline(db, record, _, document_events, files)
    room = await db.get(RoomRow, record.room_id)
    info = guest_info.current(record, tags)
    acks = await acknowledgements.for_room(db, record.room_id)
    return render(
        request,
        "record.html",
        status_code=status_code,
        record=record,
        started=in_jst(record.started_at),
        ended=in_jst(record.ended_at) if record.ended_at else None,
        duration=duration_text(_, record.duration_seconds),
        host_name=host.display_name if host else "",
        via=_(VIA_LABELS.get(record.via, record.via)),
        live=room is not None and room.state == RoomState.ACTIVE and record.ended_at is None,
        may_sit_in=user.role in MANAGERS,
        form=context.pop("form", None) or {**info.__dict__, "tags": ", ".join(info.tags)},
        field_labels=guest_info.FIELD_LABELS,
        limits=guest_info.LIMITS,
        tags=tags,
        acknowledgements=[(ack, texts, in_jst(ack.accepted_at)) for ack, texts in acks],
        lines=await memo_with_authors(db, record, _),
        files=[(file, in_jst(file.created_at)) for file in files],
        role_words=ROLE_WORDS,
        documents=documents,
        events=events,
        recordings=await db.scalar(
            select(Recording.id)
            .where(Recording.room_id == record.room_id, Recording.org_id == record.org_id)
            .limit(1)
        ),
        sit_ins=[(w, in_jst(w.started_at), in_jst(w.ended_at) if w.ended_at else None) for w in watchers],
        edits=[(edit, in_jst(edit.at)) for edit in await guest_info.edits(db, record.id)],
        customer_id=await customers.customer_of_record(db, record.id),
        **context,
    )


@signed_in()
async def record_page(request: Request) -> Response:
    return await _page(request, await record_for(request))


@signed_in()
async def edit_guest_info(request: Request) -> Response:
    """商談先情報 changed by the meeting's host or a manager; each changed field is logged."""
    record = await record_for(request)
    user: User = request.state.user
    form = await request.form()
    raw = {name: str(form.get(name, "")) for name in (*guest_info.LIMITS, "tags")}
    try:
        info = guest_info.GuestInfo.clean(raw)
    except InvalidInput as exc:
        _ = translator(request)
        params = {**exc.params, **({"field": _(exc.params["field"])} if "field" in exc.params else {})}
        return await _page(request, record, status_code=400, error=_(exc.message, **params), form=raw)
    now = at(services(request).clock())
    await guest_info.edit(request.state.db, record, info, user.id, user.display_name, now)
    return RedirectResponse(f"/records/{record.id}?saved=1", status_code=303)


@signed_in()
async def record_file(request: Request) -> Response:
    """A file sent in the meeting, for its host and the org's managers and admins (the guest downloads it
    from the meeting page)."""
    record = await record_for(request)
    file_id = int(request.path_params["file_id"])
    row = await room_file(request.state.db, record.room_id, record.org_id, file_id)
    if row is None:
        raise NotFound()
    storage = services(request).storage
    key = RoomFileStorage(storage).key(record.org_id, record.room_id, row.id)
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(row.name)}
    return await blob_response(request, storage, key, row.content_type, headers)


routes: list[BaseRoute] = [
    Route("/records/{record_id:int}", record_page, methods=["GET"]),
    Route("/records/{record_id:int}/guest", edit_guest_info, methods=["POST"]),
    Route("/records/{record_id:int}/files/{file_id:int}", record_file, methods=["GET"]),
]
