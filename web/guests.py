"""The guest's way in: the guest page, connect numbers, join links, and the lobby that waits for the host.

A guest is a browser with a random token in its session cookie. Numbers and links bind to that token, so
only the browser that asked gets into the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.errors import N_, InvalidInput, NotFound, RateLimited
from recordings import acknowledgements
from signaling import links
from signaling.broker import Subscription, is_resumed
from signaling.protocol import CloseCode
from signaling.rooms import admitted_room, at, token_hash
from store.models import Org
from web.origins import same_origin
from web.services import services
from web.templating import render, translator

GUEST_TOKEN = "guest"
LOBBY_WAIT_SECONDS = 15 * 60  # a number lives 120 s; a lobby socket never needs to outlive this


def guest_token(request: Request | WebSocket, create: bool = False) -> str | None:
    token = request.session.get(GUEST_TOKEN)
    if not isinstance(token, str) and create:
        token = secrets.token_urlsafe(32)
        request.session[GUEST_TOKEN] = token
    return token if isinstance(token, str) else None


def lobby_topic(token: str) -> str:
    return f"lobby:{token_hash(token)}"


def _terms(request: Request, org: Org | None) -> dict[str, str]:
    _ = translator(request)
    return {
        "terms_of_use": (org.terms_of_use if org else "") or _(DEFAULT_TERMS),
        "personal_data_policy": (org.personal_data_policy if org else "") or _(DEFAULT_PERSONAL_DATA),
        "privacy_policy": (org.privacy_policy if org else "") or _(DEFAULT_PRIVACY),
    }


DEFAULT_TERMS = N_(
    "This service lets you see the same screen as our representative while you talk on the phone. "
    "Please do not record or share the screen with others."
)
DEFAULT_PERSONAL_DATA = N_(
    "Your name, phone number and what you write in the shared memo are used only to handle this meeting "
    "and are managed by the company you are talking with."
)
DEFAULT_PRIVACY = N_(
    "The meeting may be recorded if the representative turns recording on; you will see when it is. "
    "Recordings and records are kept by the company and never sold or shared with third parties."
)


async def guest_page(request: Request) -> Response:
    guest_token(request, create=True)
    return render(request, "guest.html", terms=_terms(request, None), org=None)


async def org_guest_page(request: Request) -> Response:
    guest_token(request, create=True)
    async with services(request).sessions() as db:
        org = await db.scalar(select(Org).where(Org.slug == request.path_params["slug"]))
    if org is None:
        raise NotFound()
    return render(request, "guest.html", terms=_terms(request, org), org=org)


async def issue_number(request: Request) -> Response:
    """接続ナンバーを発行: a new 4-digit number for this browser (re-issuing revokes the previous one)."""
    state = services(request)
    token = guest_token(request, create=True)
    assert token is not None
    slug = await _org_of_page(request)
    client = request.client.host if request.client else "unknown"
    # Checked and counted in one step: simultaneous requests cannot all slip under the limit.
    hit = await state.number_issue_limiter.hit(client)
    if not hit.counted:
        raise RateLimited(
            hit.retry_after,
            N_("Too many numbers were issued from this network. Please wait {seconds} seconds."),
        )
    number = await state.numbers.issue(token)
    now = state.clock()
    # The button is pressed after agreeing to the texts: keep what was agreed to (the org's page shows the
    # org's texts, the plain guest page the built-in ones), for the meeting record.
    async with state.sessions.begin() as db:
        org = await db.scalar(select(Org).where(Org.slug == slug)) if slug else None
        await acknowledgements.acknowledge(
            db,
            guest_token_hash=token_hash(token),
            texts=acknowledgements.Texts(**_terms(request, org)),
            via="number",
            language=translator(request).language,
            at=at(now),
            org_id=org.id if org else None,
        )
    return JSONResponse(
        {
            "number": number.number,
            "expires_in": round(number.expires_at - now, 3),
            "ttl": number.expires_at - number.issued_at,
        },
        status_code=201,
    )


async def lobby(websocket: WebSocket) -> None:
    """Waits until a host lets this browser in, then sends ``{"type": "admitted", "url": …}``.

    A cross-site handshake is refused (HTTP 403), as on the room channel. One browser holds at most
    ``LOBBY_SOCKETS_PER_GUEST`` lobby sockets at once and one client address ``LOBBY_SOCKETS_PER_ADDRESS``
    (on this node); more are closed at once with 4029."""
    if not same_origin(websocket):
        await websocket.close(int(CloseCode.NOT_ALLOWED))
        return
    token = guest_token(websocket)
    await websocket.accept()
    if token is None:
        await websocket.close(int(CloseCode.NOT_ALLOWED))
        return
    state = services(websocket)
    address = websocket.client.host if websocket.client else "unknown"
    try:
        with state.lobby_per_guest.hold(token_hash(token)), state.lobby_per_address.hold(address):
            await _wait_for_admission(websocket, token)
    except TooManySockets:
        await websocket.close(int(CloseCode.TOO_MANY_SOCKETS))


async def _admitted(websocket: WebSocket, token: str, subscription: Subscription) -> str | None:
    """The room the guest is admitted to, once the host redeems the number; None when the socket closed or
    the wait ran out."""
    state = services(websocket)
    deadline = asyncio.get_running_loop().time() + LOBBY_WAIT_SECONDS
    closed = asyncio.create_task(_until_closed(websocket))
    try:
        while True:  # bounded by the deadline
            # The host may have redeemed the number before this socket opened, or while Redis was away.
            async with state.sessions() as db:
                room = await admitted_room(db, token)
            if room is not None:
                return room.id
            waiting = asyncio.create_task(subscription.get())
            left = deadline - asyncio.get_running_loop().time()
            done, _pending = await asyncio.wait(
                {waiting, closed}, timeout=max(0.0, left), return_when=asyncio.FIRST_COMPLETED
            )
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await waiting
            if waiting not in done or waiting.cancelled() or waiting.exception():
                return None
            message = waiting.result()
            if not is_resumed(message):
                return str(message["room"])
            # An admission may have been published while the broker was away: look in the database again.
    finally:
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await closed


class TooManySockets(Exception):
    """This browser or this address already holds its share of lobby sockets."""


async def _wait_for_admission(websocket: WebSocket, token: str) -> None:
    state = services(websocket)
    async with await state.broker.subscribe(lobby_topic(token)) as subscription:
        room_id = await _admitted(websocket, token, subscription)
        if room_id is None:
            with contextlib.suppress(Exception):
                await websocket.close()
            return
    await websocket.send_json({"type": "admitted", "url": f"/rooms/{room_id}"})
    await websocket.close()


async def _until_closed(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


async def link_page(request: Request) -> Response:
    """The page an SMS 接続用URL opens: the same terms, then straight into the host's room."""
    guest_token(request, create=True)
    now = services(request).clock()
    async with services(request).sessions() as db:
        link = await links.check_link(db, request.path_params["token"], now)
        org = await db.get(Org, link.org_id)
    return render(
        request, "guest.html", terms=_terms(request, org), org=org, link_token=request.path_params["token"]
    )


async def accept_link(request: Request) -> Response:
    token = guest_token(request, create=True)
    assert token is not None
    state = services(request)
    now = state.clock()
    async with state.sessions.begin() as db:
        room = await links.accept_link(db, request.path_params["token"], token, now)
        room_id = room.id
        org = await db.get(Org, room.org_id)
        await acknowledgements.acknowledge(
            db,
            guest_token_hash=token_hash(token),
            texts=acknowledgements.Texts(**_terms(request, org)),
            via="link",
            language=translator(request).language,
            at=at(now),
            org_id=room.org_id,
            room_id=room_id,
        )
    return JSONResponse({"url": f"/rooms/{room_id}"})


class IssueNumber(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str = Field(default="", max_length=64)  # the slug of the org's guest page it was issued on


async def _org_of_page(request: Request) -> str:
    try:
        return IssueNumber.model_validate_json(await request.body() or b"{}").org
    except ValidationError as exc:
        raise InvalidInput() from exc


routes = [
    Route("/", guest_page, methods=["GET"]),
    Route("/g/{slug}", org_guest_page, methods=["GET"]),
    Route("/j/{token}", link_page, methods=["GET"]),
    Route("/api/numbers", issue_number, methods=["POST"]),
    Route("/api/links/{token}/accept", accept_link, methods=["POST"]),
    WebSocketRoute("/ws/lobby", lobby),
]
