"""The replay of a recorded meeting (商談記録 → 録画): the cameras and the screen share in step, seekable,
with the document page that was on screen and the memo as it stood at that moment, and the meeting's timeline.

The same people as the meeting record (its host, the org's managers and admins; anybody else 404). The
WebM files are served from storage with HTTP Range (``web.blobs``), so the browser seeks without loading a
file whole; the page (web/static/src/replay.js) places each file on the meeting's time line by its
``origin_at``. Managers and admins may delete a recording.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import NotFound
from documents.models import Document
from recordings.models import MeetingRecord, Recording
from recordings.records import memo_updates, page_views
from signaling.memo_history import history
from signaling.rooms import as_utc, logged_updates
from store.models import User
from web.auth import signed_in
from web.blobs import blob_response
from web.record_page import memo_with_authors, record_for, shown_documents, timeline
from web.records import MANAGERS
from web.services import services
from web.templating import render, translator

WEBM = "video/webm"


def _ms(moment: Any) -> int:
    return int(as_utc(moment).timestamp() * 1000)


async def recordings_of(request: Request, record: MeetingRecord) -> list[Recording]:
    db = request.state.db
    query = (
        select(Recording)
        .where(Recording.room_id == record.room_id, Recording.org_id == record.org_id)
        .order_by(Recording.origin_at, Recording.id)
    )
    return list(await db.scalars(query))


@signed_in()
async def replay_page(request: Request) -> Response:
    record = await record_for(request)
    user: User = request.state.user
    return render(
        request,
        "replay.html",
        record=record,
        recordings=await recordings_of(request, record),
        may_delete=user.role in MANAGERS,
    )


@signed_in()
async def replay_data(request: Request) -> Response:
    """What the replay page plays and shows, times in ms since the epoch (JSON)."""
    record = await record_for(request)
    db = request.state.db
    _ = translator(request)
    files = await recordings_of(request, record)
    views = await page_views(db, record.room_id)
    ids = {view.document_id for view in views}
    names = {
        d.id: d.name
        for d in await db.scalars(
            select(Document).where(Document.org_id == record.org_id, Document.id.in_(ids))
        )
    }
    documents, document_events = await shown_documents(db, record, _)
    events, _watchers = await timeline(db, record, _, document_events, [])
    memo = history(logged_updates(await memo_updates(db, record.room_id)))
    start = min([_ms(record.started_at), *(_ms(f.origin_at) for f in files)])
    ends = [_ms(f.origin_at) + f.end_ms for f in files]
    if record.ended_at is not None:
        ends.append(_ms(record.ended_at))
    return JSONResponse(
        {
            "start": start,
            "end": max([start, *ends]),
            "recordings": [
                {
                    "id": f.id,
                    "seat": f.seat,
                    "track": f.track,
                    "at": _ms(f.origin_at),
                    "duration": f.end_ms,
                    "state": f.state,
                    "url": f"/records/{record.id}/recordings/{f.id}",
                }
                for f in files
            ],
            "pages": [
                {
                    "at": _ms(view.started_at),
                    "until": _ms(view.ended_at) if view.ended_at is not None else None,
                    "document": names.get(view.document_id, ""),
                    "page": view.page,
                    "image": f"/documents/{view.document_id}/pages/{view.page}.jpg"
                    if view.document_id in names
                    else None,
                }
                for view in views
            ],
            "memo": [{"at": int(at * 1000), "text": text} for at, text in memo],
            "lines": [
                {"text": text, "who": who, "at": _ms(when) if when is not None else None}
                for text, who, when in await memo_with_authors(db, record, _)
            ],
            "events": [{"at": _ms(event.at), "text": event.text} for event in events],
        }
    )


async def _recording(request: Request, record: MeetingRecord) -> Recording:
    recording: Recording | None = await request.state.db.get(
        Recording, int(request.path_params["recording_id"])
    )
    if recording is None or recording.room_id != record.room_id or recording.org_id != record.org_id:
        raise NotFound()
    return recording


@signed_in()
async def recording_file(request: Request) -> Response:
    """One track's WebM file, with Range (seeking) from either storage backend."""
    record = await record_for(request)
    recording = await _recording(request, record)
    return await blob_response(request, services(request).storage, recording.key, WEBM)


@signed_in()
async def delete_recording(request: Request) -> Response:
    """Managers and admins of the org delete a recording (its file, then its row); anybody else 404."""
    record = await record_for(request)
    user: User = request.state.user
    if user.role not in MANAGERS:
        raise NotFound()
    recording = await _recording(request, record)
    await services(request).storage.delete(recording.key)
    await request.state.db.delete(recording)
    return RedirectResponse(f"/records/{record.id}/replay?deleted=1", status_code=303)


routes: list[BaseRoute] = [
    Route("/records/{record_id:int}/replay", replay_page, methods=["GET"]),
    Route("/records/{record_id:int}/replay.json", replay_data, methods=["GET"]),
    Route("/records/{record_id:int}/recordings/{recording_id:int}", recording_file, methods=["GET"]),
    Route(
        "/records/{record_id:int}/recordings/{recording_id:int}/delete", delete_recording, methods=["POST"]
    ),
]
