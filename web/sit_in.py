"""同席: the org's meetings in progress (商談中) and sitting in on one, read-only, for managers and admins.

- ``GET /live``: the list; ``GET /live/{room_id}``: the page that shows both cameras, the document and the
  memo as it is typed (web/static/src/sit-in.js).
- ``/ws/sit-in/{room_id}`` (subprotocol ``tsunagu.v1``): the room's frames to the manager; **any** frame from
  the manager's page is refused (an ``error`` frame ``read_only``, then close 4005): nothing it does reaches
  the meeting (signaling/sit_in.py).
- ``POST /api/sit-in/{room_id}/offer``: the page's receive-only peer connection offer, for the connection
  its socket was welcomed with; the answer comes on the socket as ``media.answer``.

Hosts get 403, other orgs 404. The participants see 「上長が同席中」 when the org's setting says so (default
on), and the meeting record keeps who sat in, from when until when (recordings/sit_ins.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from core.clock import in_jst
from core.errors import N_, InvalidInput, NotFound, Unavailable
from media import ice_servers
from recordings import sit_ins
from recordings.records import record_for_room
from signaling import rooms
from signaling.connections import Watcher
from signaling.models import RoomRow, RoomState
from signaling.protocol import CloseCode, ErrorCode, ErrorFrame
from store.db import unavailable_when_transient
from store.models import Org, User
from web.auth import load_user, signed_in
from web.i18n import Translator
from web.origins import accept_room_socket
from web.records import MANAGERS
from web.room_socket import send_frame, write_frames
from web.services import services
from web.templating import render, translator

LIVE_WITHIN = timedelta(hours=24)  # older "active" rooms are ones a crashed node never ended
READ_ONLY = N_("You are sitting in: nothing can be sent to the meeting from this page.")


async def _room(request: Request | WebSocket, user: User) -> RoomRow:
    """The room in the path, if it is in the user's org and not ended; NotFound otherwise."""
    async with services(request).sessions() as db:
        room = await db.get(RoomRow, request.path_params["room_id"])
    if room is None or room.org_id != user.org_id or room.state == RoomState.ENDED:
        raise NotFound()
    return room


@signed_in(*MANAGERS)
async def live_page(request: Request) -> Response:
    user: User = request.state.user
    now = rooms.at(services(request).clock())
    live = await rooms.live_rooms(request.state.db, user.org_id, now - LIVE_WITHIN)
    return render(
        request,
        "live.html",
        meetings=[(room, record, host, in_jst(record.started_at)) for room, record, host in live],
    )


@signed_in(*MANAGERS)
async def sit_in_page(request: Request) -> Response:
    user: User = request.state.user
    room = await _room(request, user)
    db = request.state.db
    record = await record_for_room(db, room.id)
    host = await db.get(User, room.host_id)
    return render(
        request,
        "sit_in.html",
        room=room,
        record=record,
        started=in_jst(record.started_at) if record else None,
        host_name=host.display_name if host else "",
        announced=user.org.show_sit_in,
        ice_servers=ice_servers(
            services(request).media_settings, f"{room.id}:sit-in:{user.id}", services(request).clock()
        ),
    )


class SitInOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connection: str = Field(min_length=1, max_length=64)
    sdp: str = Field(min_length=1, max_length=60_000)


@signed_in(*MANAGERS)
async def sit_in_offer(request: Request) -> Response:
    user: User = request.state.user
    room = await _room(request, user)
    try:
        offer = SitInOffer.model_validate_json(await request.body())
    except ValidationError as exc:
        raise InvalidInput() from exc
    await services(request).hub.sit_in_offer(room.id, offer.connection, user.id, offer.sdp)
    return JSONResponse({"status": "accepted"}, status_code=202)


async def sit_in_channel(websocket: WebSocket) -> None:
    """A manager's read-only view of a room's channel (docs/protocol.md, "Sitting in")."""
    if not await accept_room_socket(websocket):
        return
    state = services(websocket)
    try:
        async with unavailable_when_transient():
            async with state.sessions() as db:
                user = await load_user(websocket, db)
                org = await db.get(Org, user.org_id) if user is not None else None
            if user is None or org is None or user.role not in MANAGERS:
                raise NotFound()
            room = await _room(websocket, user)
            if room.home_node == state.settings.node_id and not state.hub.is_home(room.id):
                async with state.sessions() as db:  # this node was restarted: bring the room back
                    await state.hub.open(
                        room.id, await rooms.connect_id(db, room.id), room.state, recording=room.recording
                    )
            async with state.sessions.begin() as db:
                record = await record_for_room(db, room.id)
                assert record is not None  # every room has one
                sit_in_id = await sit_ins.start(
                    db,
                    record_id=record.id,
                    user_id=user.id,
                    user_name=user.display_name,
                    announced=org.show_sit_in,
                    at=rooms.at(state.clock()),
                )
    except NotFound:
        await websocket.close(int(CloseCode.ROOM_NOT_FOUND))
        return
    except Unavailable:
        # The database is busy or unreachable for now: 4503 makes the page try again shortly (as a
        # participant's channel does).
        with contextlib.suppress(Exception):
            await websocket.close(int(CloseCode.UNAVAILABLE))
        return
    _ = translator(websocket)
    try:
        async with state.hub.sit_in(room.id, user.id, org.show_sit_in) as watcher:
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(write_frames(websocket, watcher, _))
                reader = group.create_task(_refuse_frames(websocket, watcher, _))
                await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
                for task in (writer, reader):
                    task.cancel()
    finally:
        async with state.sessions.begin() as db:
            await sit_ins.finish(db, sit_in_id, rooms.at(state.clock()))


async def _refuse_frames(websocket: WebSocket, watcher: Watcher, _: Translator) -> None:
    """The manager's page sends nothing: the first frame it sends is refused and closes its socket."""
    event = await websocket.receive()
    if event["type"] == "websocket.disconnect":
        return
    await send_frame(websocket, ErrorFrame(code=ErrorCode.READ_ONLY, message=_(READ_ONLY)).model_dump())
    with contextlib.suppress(Exception):
        await websocket.close(int(CloseCode.READ_ONLY))


routes: list[BaseRoute] = [
    Route("/live", live_page, methods=["GET"]),
    Route("/live/{room_id}", sit_in_page, methods=["GET"]),
    Route("/api/sit-in/{room_id}/offer", sit_in_offer, methods=["POST"]),
    WebSocketRoute("/ws/sit-in/{room_id}", sit_in_channel),
]
