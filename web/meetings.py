"""The host's side of joining and the call page: redeem a number, send an SMS link, the QR code, and the
room channel WebSocket both sides use."""

from __future__ import annotations

import asyncio
import contextlib
import io
import unicodedata
from typing import Any

import segno
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from core.errors import N_, InvalidInput, NotFound, RateLimited, Unavailable
from deals import customers
from documents.models import Document, DocumentStatus
from media import ice_servers
from recordings import acknowledgements
from signaling import links, rooms
from signaling.models import JoinedVia, RoomRow, RoomState
from signaling.numbers import NumberExpired, NumberUnknown, NumberUsed
from signaling.phone import display_mobile, national_number, normalise_mobile
from signaling.protocol import (
    CloseCode,
    DocumentInfo,
    Role,
)
from signaling.sms import SmsFailed, room_sms, send_sms
from store.db import unavailable_when_transient
from store.models import Role as UserRole
from store.models import User
from web.auth import load_user, signed_in
from web.guests import guest_token, lobby_topic
from web.i18n import DEFAULT_LANGUAGE, Translator
from web.memo_templates import default_memo_text
from web.origins import accept_room_socket
from web.reach import SERVE_FOR_PHONES, PhoneAddress, phone_address
from web.room_socket import read_frames, write_frames
from web.services import services
from web.templating import render, translator

log = structlog.get_logger("tsunagu.meetings")


class NumberLocked(RateLimited):
    code = "number_locked"
    message = N_("Too many wrong numbers. Connecting is locked; please wait {seconds} seconds.")


class StartByNumber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str
    camera: bool = True
    recording: bool = False


class StartByLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str
    camera: bool = True
    recording: bool = False


async def _json_body(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise InvalidInput() from exc


def for_phones(request: Request) -> PhoneAddress:
    """The address customers' phones can open (web/reach.py), as seen from this request."""
    return phone_address(services(request).settings, str(request.base_url))


def guest_page_url(request: Request, org_slug: str) -> str:
    return for_phones(request).url(f"/g/{org_slug}")


@signed_in()
async def host_home(request: Request) -> Response:
    user: User = request.state.user
    phones = for_phones(request)
    return render(
        request,
        "host.html",
        guest_url=phones.url(f"/g/{user.org.slug}"),
        phones=phones,
        serve_for_phones=SERVE_FOR_PHONES,
        sms_stores_only=services(request).sms.name == "outbox",
        default_camera=user.org.default_camera,
        default_recording=user.org.default_recording,
    )


@signed_in()
async def qr_code(request: Request) -> Response:
    """The org's guest page as an SVG QR code, to show on screen or print."""
    user: User = request.state.user
    svg = io.BytesIO()
    # A standalone file (with its namespace), so it works in <img> and when downloaded.
    segno.make(guest_page_url(request, user.org.slug), error="m").save(svg, kind="svg", scale=6, border=2)
    headers = (
        {"Content-Disposition": 'attachment; filename="tsunagu-guest-qr.svg"'}
        if "download" in request.query_params
        else None
    )
    return Response(svg.getvalue(), media_type="image/svg+xml", headers=headers)


async def _home_node(request: Request) -> str:
    """Where a new room is homed: the least-loaded live node when there are several (signaling/homes.py)."""
    state = services(request)
    return state.settings.node_id if state.homes is None else await state.homes.place()


async def _open_room(request: Request, room: RoomRow, connect_id: str) -> None:
    state = services(request)
    if state.homes is None or room.home_node == state.settings.node_id:
        await state.hub.open(room.id, connect_id, recording=room.recording)
    else:
        await state.homes.open_at(room.home_node, room.id, connect_id, room.recording)


@signed_in()
async def start_by_number(request: Request) -> Response:
    """電話商談を開始する: redeem the guest's number, create the room, and let the guest's browser in."""
    state = services(request)
    user: User = request.state.user
    body: StartByNumber = await _json_body(request, StartByNumber)
    # Every attempt is counted before the number is looked at (one atomic step, so simultaneous guesses
    # cannot all be evaluated) and taken back when the number was right: only wrong numbers stay counted.
    attempt = await state.wrong_number_limiter.hit(f"host:{user.id}")
    if not attempt.counted:
        log.warning("connect numbers locked", host=user.id, org=user.org_id)
        raise NumberLocked(attempt.retry_after)
    try:
        # A host typing with a Japanese IME may send full-width digits (１２３４).
        number = await state.numbers.redeem(unicodedata.normalize("NFKC", body.number).strip())
    except (NumberUnknown, NumberExpired, NumberUsed) as wrong:
        log.info("wrong connect number", host=user.id, org=user.org_id, reason=wrong.code)
        raise
    except BaseException:
        await state.wrong_number_limiter.undo(attempt)  # not a wrong number: Redis down, say
        raise
    await state.wrong_number_limiter.undo(attempt)
    db = request.state.db
    room, record = await rooms.create_room(
        db,
        org_id=user.org_id,
        host_id=user.id,
        via=JoinedVia.NUMBER,
        guest_token=number.guest_token,
        camera=body.camera,
        recording=body.recording,
        home_node=await _home_node(request),
        now=state.clock(),
        memo_text=await default_memo_text(db, user.org_id),
    )
    # What the guest agreed to before issuing the number now belongs to this meeting.
    await acknowledgements.bind(db, rooms.token_hash(number.guest_token), room.id, user.org_id)
    await db.commit()
    await _open_room(request, room, record.connect_id)
    await state.broker.publish(lobby_topic(number.guest_token), {"room": room.id})
    log.info("room created", room=room.id, via="number", connect_id=record.connect_id)
    return JSONResponse(
        {"room_id": room.id, "url": f"/rooms/{room.id}", "connect_id": record.connect_id}, status_code=201
    )


@signed_in()
async def start_by_link(request: Request) -> Response:
    """SMS 接続用URL: send the guest a single-use link to this host's new, waiting room."""
    state = services(request)
    user: User = request.state.user
    body: StartByLink = await _json_body(request, StartByLink)
    phone = normalise_mobile(body.phone)
    db = request.state.db
    now = state.clock()
    room, record = await rooms.create_room(
        db,
        org_id=user.org_id,
        host_id=user.id,
        via=JoinedVia.LINK,
        guest_token=None,
        camera=body.camera,
        recording=body.recording,
        home_node=await _home_node(request),
        now=now,
        memo_text=await default_memo_text(db, user.org_id),
    )
    record.guest_phone = national_number(phone)  # the meeting record knows whom it was with
    # One customer across meetings: the number, however it was typed, is stored as E.164 and matched.
    customer = await customers.match_or_create(db, user.org_id, user.id, phone)
    await customers.attach_meeting(db, record.id, customer.id)
    ttl = state.settings.join_link_ttl_minutes * 60
    token = await links.create_link(db, room, phone, now, ttl)
    base = for_phones(request).base
    # The customer reads the SMS, not the host: it is in the default language whatever the host's setting.
    _ = Translator(DEFAULT_LANGUAGE)
    sms_text = _(
        "{company}: the link to share the screen with {host} (valid {minutes} minutes): {url}",
        company=user.org.name,
        host=user.display_name,
        minutes=state.settings.join_link_ttl_minutes,
        url=f"{base}/j/{token}",
    )
    try:
        sms = await send_sms(
            db, state.sms, org_id=user.org_id, sender_id=user.id, room_id=room.id, to=phone, body=sms_text
        )
    except SmsFailed:
        await rooms.set_state(db, room.id, RoomState.ENDED, now)
        await db.commit()  # the failed attempt stays in the SMS送信履歴; the unused room is closed
        raise
    await db.commit()
    await _open_room(request, room, record.connect_id)
    log.info("room created", room=room.id, via="link", sms=sms.status.value)
    return JSONResponse(
        {
            "room_id": room.id,
            "url": f"/rooms/{room.id}",
            "connect_id": record.connect_id,
            # "sent": the gateway accepted it; "stored": the outbox gateway kept it and nothing was sent.
            "sms": {"status": sms.status.value, "to": sms.to},
        },
        status_code=201,
    )


async def find_document(db: AsyncSession, room: RoomRow, document_id: int) -> DocumentInfo | None:
    """A document the room's host may show: ready, in the room's org, the host's own or org-wide."""
    document = await db.get(Document, document_id)
    if (
        document is None
        or document.org_id != room.org_id
        or document.status != DocumentStatus.READY
        or not (document.org_wide or document.owner_id == room.host_id)
    ):
        return None
    return DocumentInfo(id=document.id, name=document.name, kind=document.kind.value, pages=document.pages)


async def participant(request: Request | WebSocket) -> tuple[RoomRow, Role, str]:
    """The room and this visitor's role in it; NotFound for anyone else (never reveal that it exists)."""
    room_id = request.path_params["room_id"]
    async with services(request).sessions() as db:
        user = await load_user(request, db)
        if user is not None:
            with contextlib.suppress(NotFound):
                room = await rooms.room_for_host(db, room_id, user.id, user.org_id)
                return room, Role.HOST, await rooms.connect_id(db, room.id)
        room = await rooms.room_for_guest(db, room_id, guest_token(request))
        return room, Role.GUEST, ""


async def call_page(request: Request) -> Response:
    room, role, connect_id = await participant(request)
    async with services(request).sessions() as db:
        # The guest sees whom it is connected to, so a mistyped number is noticed at once.
        host = await db.scalar(select(User).options(selectinload(User.org)).where(User.id == room.host_id))
        # The host sees whether its SMS went out, or was only stored (SMS_GATEWAY=outbox).
        waiting = role == Role.HOST and room.via == JoinedVia.LINK and room.state == RoomState.WAITING
        sms = await room_sms(db, room.id) if waiting else None
    return render(
        request,
        "call.html",
        room=room,
        role=role.value,
        sms=sms,
        sms_to=display_mobile(sms.to) if sms else "",
        sms_history=role == Role.HOST and host is not None and host.role == UserRole.ADMIN,
        camera_on_start=room.camera,
        rejoin_grace=services(request).settings.rejoin_grace_seconds,
        video_connect_seconds=services(request).settings.video_connect_seconds,
        connect_id=connect_id,
        host_name=host.display_name if host else "",
        company=host.org.name if host else "",
        ended=room.state == RoomState.ENDED,
        # STUN/TURN for this participant's browser; TURN credentials expire after TURN_TTL_SECONDS.
        ice_servers=ice_servers(
            services(request).media_settings, f"{room.id}:{role.value}", services(request).clock()
        ),
    )


async def room_channel(websocket: WebSocket) -> None:
    """One participant's room channel (docs/protocol.md).

    A cross-site handshake is refused outright (HTTP 403). Every other refusal accepts and then closes with
    a close code, because browsers cannot see why a handshake failed but can read a close code.
    """
    if not await accept_room_socket(websocket):
        return
    state = services(websocket)
    try:
        async with unavailable_when_transient():
            room, role, connect_id = await participant(websocket)
            if room.state == RoomState.ENDED:
                await websocket.close(int(CloseCode.ROOM_ENDED))
                return
            if room.home_node == state.settings.node_id and not state.hub.is_home(room.id):
                # This node was restarted: bring the room back (presence starts afresh).
                await state.hub.open(
                    room.id,
                    connect_id or await _connect_id(websocket, room.id),
                    room.state,
                    recording=room.recording,
                )
    except NotFound:
        await websocket.close(int(CloseCode.ROOM_NOT_FOUND))
        return
    except Unavailable:
        # The database is busy or unreachable for now: 4503 makes the page try again shortly.
        log.warning("room.connect_unavailable", room=websocket.path_params["room_id"])
        with contextlib.suppress(Exception):
            await websocket.close(int(CloseCode.UNAVAILABLE))
        return
    _ = translator(websocket)
    async with state.hub.participate(room.id, role) as member:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(write_frames(websocket, member, _))
            reader = group.create_task(read_frames(websocket, member, _))
            done, _pending = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            for task in (writer, reader):
                task.cancel()


async def _connect_id(websocket: WebSocket, room_id: str) -> str:
    async with services(websocket).sessions() as db:
        return await rooms.connect_id(db, room_id)


routes = [
    Route("/host", host_home, methods=["GET"]),
    Route("/host/qr.svg", qr_code, methods=["GET"]),
    Route("/api/rooms", start_by_number, methods=["POST"]),
    Route("/api/rooms/link", start_by_link, methods=["POST"]),
    Route("/rooms/{room_id}", call_page, methods=["GET"]),
    WebSocketRoute("/ws/rooms/{room_id}", room_channel),
]
