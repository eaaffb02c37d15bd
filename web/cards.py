"""名刺: the host's business card, edited in settings, shown to guests, saved as vCard.

Every signed-in user edits its own card at ``/card``. The photo and up to 3 extra images are uploaded as the
raw request body (as documents are) and re-encoded by ``web.card_images``. They are kept in storage
(``core.storage``) under ``cards/<user_id>/`` and are served to the card's owner, to users of the same
org, and to the guest of a room of that host that has not ended; everyone else gets 404.

In the call, the room's participants get the host's card as JSON (``/rooms/<id>/card``) and as a vCard 4.0
(``/rooms/<id>/card.vcf``); the browser draws the card image itself, with the guest's own fonts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import N_, InvalidInput, NotAuthenticated, NotFound
from signaling.models import RoomRow, RoomState
from signaling.protocol import Role as RoomRole
from signaling.rooms import token_hash
from store.models import BusinessCard, User, utcnow
from web.auth import load_user, signed_in
from web.blobs import blob_response
from web.card_images import (
    IMAGE_MAX_BYTES,
    VCARD_PHOTO_SIDE,
    ImageTooLarge,
    NotAnImage,
    card_key,
    megabytes,
    reencode,
    reencode_sandboxed,
    sniff,
)
from web.guests import guest_token
from web.meetings import participant
from web.services import services
from web.templating import render, translator
from web.uploads import chunks, declared_size
from web.vcard import CardData, vcard

SLOTS = ("photo", "1", "2", "3")
IMAGE_HEADERS = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}

# Field -> (label msgid, longest value). Limits are the columns' (store.models.BusinessCard) or tighter.
FIELDS: dict[str, tuple[str, int]] = {
    "family_name": (N_("Family name"), 50),
    "given_name": (N_("Given name"), 50),
    "family_name_reading": (N_("Family name (reading)"), 50),
    "given_name_reading": (N_("Given name (reading)"), 50),
    "company": (N_("Company"), 100),
    "title": (N_("Title"), 100),
    "phone": (N_("Phone"), 30),
    "email": (N_("Email"), 254),
}
PHONE_PATTERN = re.compile(r"^\+?[0-9()\-. ]{6,30}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- the card as plain data --------------------------------------------------------------------------------


def _images(raw: str) -> tuple[str, str, str]:
    try:
        names = json.loads(raw or "[]")
    except ValueError:
        names = []
    names = [str(n) if isinstance(n, str) else "" for n in names][:3] if isinstance(names, list) else []
    names += [""] * (3 - len(names))
    return names[0], names[1], names[2]


def _card_data(card: BusinessCard) -> CardData:
    return CardData(
        user_id=card.user_id,
        family_name=card.family_name,
        given_name=card.given_name,
        family_name_reading=card.family_name_reading,
        given_name_reading=card.given_name_reading,
        company=card.company,
        title=card.title,
        phone=card.phone,
        email=card.email,
        photo=card.photo,
        images=_images(card.images),
    )


def _default_card(user: User) -> CardData:
    """What a card says before its owner edits it: the account's name and the org's name."""
    family, _sep, given = user.display_name.strip().partition(" ")
    return CardData(
        user_id=user.id, family_name=family, given_name=given.strip(), company=user.org.name, email=user.email
    )


async def load_card(db: AsyncSession, user: User) -> CardData:
    card = await db.get(BusinessCard, user.id)
    return _card_data(card) if card is not None else _default_card(user)


async def _card_row(db: AsyncSession, user_id: int, org_id: int) -> BusinessCard:
    card = await db.get(BusinessCard, user_id)
    if card is None:
        user = await db.get(User, user_id)
        assert user is not None
        await db.refresh(user, ["org"])
        data = _default_card(user)
        card = BusinessCard(
            user_id=user_id,
            org_id=org_id,
            family_name=data.family_name,
            given_name=data.given_name,
            family_name_reading="",
            given_name_reading="",
            company=data.company,
            title="",
            phone="",
            email=data.email,
            photo="",
            images="[]",
        )
        db.add(card)
    return card


def image_url(card: CardData, slot: str) -> str | None:
    name = card.file(slot)
    if not name:
        return None
    return f"/cards/{card.user_id}/{slot}.jpg?v={Path(name).stem}"  # a new upload is a new URL


def card_json(card: CardData) -> dict[str, Any]:
    return {
        "family_name": card.family_name,
        "given_name": card.given_name,
        "family_name_reading": card.family_name_reading,
        "given_name_reading": card.given_name_reading,
        "full_name": card.full_name,
        "company": card.company,
        "title": card.title,
        "phone": card.phone,
        "email": card.email,
        "photo": image_url(card, "photo"),
        "images": [url for slot in SLOTS[1:] if (url := image_url(card, slot))],
    }


# --- storage -----------------------------------------------------------------------------------------------


def _slot(value: str | None) -> str:
    if value not in SLOTS:
        raise NotFound()
    return value


# --- settings page ----------------------------------------------------------------------------------------


def _clean(value: object) -> str:
    return _CONTROL.sub("", unicodedata.normalize("NFC", str(value or ""))).strip()


def _form_of(card: CardData) -> dict[str, str]:
    return {field: getattr(card, field) for field in FIELDS}


def _settings_page(
    request: Request, card: CardData, form: dict[str, str], status_code: int = 200, **context: Any
) -> Response:
    return render(
        request,
        "card_settings.html",
        status_code=status_code,
        form=form,
        fields=FIELDS,
        slots=[(slot, image_url(card, slot)) for slot in SLOTS],
        user_id=card.user_id,
        max_bytes=IMAGE_MAX_BYTES,
        max_mb=megabytes(IMAGE_MAX_BYTES),
        **context,
    )


@signed_in()
async def settings_page(request: Request) -> Response:
    card = await load_card(request.state.db, request.state.user)
    return _settings_page(request, card, _form_of(card))


def validate(form: dict[str, str], _: Any) -> list[str]:
    errors = []
    for field, (label, limit) in FIELDS.items():
        if len(form[field]) > limit:
            errors.append(_("{field} must be at most {max} characters.", field=_(label), max=f"{limit:,}"))
    if not form["family_name"] and not form["given_name"]:
        errors.append(_("Please enter your name."))
    if form["phone"] and not PHONE_PATTERN.match(unicodedata.normalize("NFKC", form["phone"])):
        errors.append(_("Please enter the phone number with digits, for example 03-1234-5678."))
    if form["email"] and not EMAIL_PATTERN.match(form["email"]):
        errors.append(_("Please enter the email address in the form name@example.jp."))
    return errors


@signed_in()
async def save_settings(request: Request) -> Response:
    """Always the caller's own card: there is no user id to tamper with."""
    raw = await request.form()
    user: User = request.state.user
    db: AsyncSession = request.state.db
    _ = translator(request)
    form = {field: _clean(raw.get(field)) for field in FIELDS}
    errors = validate(form, _)
    if errors:
        return _settings_page(request, await load_card(db, user), form, status_code=400, errors=errors)
    form["phone"] = unicodedata.normalize("NFKC", form["phone"])  # full-width digits from an IME
    card = await _card_row(db, user.id, user.org_id)
    for key, value in form.items():
        setattr(card, key, value)
    card.updated_at = utcnow()
    return RedirectResponse("/card?saved=1", status_code=303)


# --- images ------------------------------------------------------------------------------------------------


async def _signed_in_ids(request: Request) -> tuple[int, int]:
    async with services(request).sessions() as db:
        user = await load_user(request, db)
        if user is None:
            raise NotAuthenticated()
        return user.id, user.org_id


async def upload_image(request: Request) -> Response:
    """``POST /api/card/images?slot=photo|1|2|3`` with the image as the body; the card's JSON.

    Like document uploads, not wrapped in ``signed_in``: no transaction is held while the body arrives. The
    body is kept in memory (at most 5 MB), decoded and re-encoded only in the sandboxed image worker
    (``web.card_images``), and only the re-encoded JPEG reaches storage, under a new name (stored whole, or
    not at all), so a failure leaves no file behind.
    """
    user_id, org_id = await _signed_in_ids(request)
    slot = request.query_params.get("slot")
    if slot not in SLOTS:
        raise InvalidInput()
    too_large = ImageTooLarge(max_mb=megabytes(IMAGE_MAX_BYTES))
    declared = declared_size(request, IMAGE_MAX_BYTES, too_large, NotAnImage())
    body = bytearray()
    with services(request).uploads.hold(f"user:{user_id}"):
        try:
            async for chunk in chunks(request, declared, too_large):
                body.extend(chunk)
                if len(body) >= 16 and sniff(bytes(body[:16])) is None:
                    raise NotAnImage()  # no need to read the rest of a text file
        except ClientDisconnect:
            return Response(status_code=400)
        jpeg = await reencode_sandboxed(bytes(body))  # decoded in the image worker, never here

    storage = services(request).storage
    name = f"{slot}-{secrets.token_hex(8)}.jpg"  # a new name each time: never a half-replaced image
    key = card_key(user_id, name)
    assert key is not None
    old = ""
    try:
        await storage.put(key, jpeg)
        async with services(request).sessions.begin() as db:
            card = await _card_row(db, user_id, org_id)
            if slot == "photo":
                old, card.photo = card.photo, name
            else:
                images = list(_images(card.images))
                old, images[int(slot) - 1] = images[int(slot) - 1], name
                card.images = json.dumps(images)
            card.updated_at = utcnow()
            data = _card_data(card)
    except BaseException:
        await asyncio.shield(storage.delete(key))
        raise
    await _remove_image(request, user_id, old)
    return JSONResponse(card_json(data), status_code=201)


@signed_in()
async def delete_image(request: Request) -> Response:
    slot = _slot(request.path_params["slot"])
    user: User = request.state.user
    card = await request.state.db.get(BusinessCard, user.id)
    old = ""
    if card is not None:
        if slot == "photo":
            old, card.photo = card.photo, ""
        else:
            images = list(_images(card.images))
            old, images[int(slot) - 1] = images[int(slot) - 1], ""
            card.images = json.dumps(images)
        card.updated_at = utcnow()
        await request.state.db.flush()
    await _remove_image(request, user.id, old)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(card_json(await load_card(request.state.db, user)))
    return RedirectResponse("/card", status_code=303)


async def _remove_image(request: Request, user_id: int, name: str) -> None:
    key = card_key(user_id, name) if name else None
    if key is not None:
        await services(request).storage.delete(key)


async def _guest_of_host(db: AsyncSession, request: Request, host_id: int) -> bool:
    """This browser is the guest of a room of ``host_id`` that has not ended."""
    token = guest_token(request)
    if not token:
        return False
    room = await db.scalar(
        select(RoomRow.id)
        .where(
            RoomRow.host_id == host_id,
            RoomRow.guest_token_hash == token_hash(token),
            RoomRow.state != RoomState.ENDED,
        )
        .limit(1)
    )
    return room is not None


async def serve_image(request: Request) -> Response:
    user_id = int(request.path_params["user_id"])
    slot = _slot(request.path_params["slot"])
    async with services(request).sessions() as db:
        card = await db.get(BusinessCard, user_id)
        if card is None:
            raise NotFound()
        viewer = await load_user(request, db)
        allowed = viewer is not None and viewer.org_id == card.org_id
        if not allowed:
            allowed = await _guest_of_host(db, request, user_id)
        name = _card_data(card).file(slot)
    if not allowed or not name:
        raise NotFound()
    key = card_key(user_id, name)
    if key is None:
        raise NotFound()
    return await blob_response(request, services(request).storage, key, "image/jpeg", IMAGE_HEADERS)


# --- in the call -------------------------------------------------------------------------------------------


async def _room_card(request: Request) -> CardData:
    room, role, _connect_id = await participant(request)
    if role == RoomRole.GUEST and room.state == RoomState.ENDED:
        raise NotFound()
    async with services(request).sessions() as db:
        host = await db.get(User, room.host_id)
        if host is None:
            raise NotFound()
        await db.refresh(host, ["org"])
        return await load_card(db, host)


async def room_card(request: Request) -> Response:
    return JSONResponse(card_json(await _room_card(request)), headers={"Cache-Control": "no-store"})


def _filename(card: CardData) -> str:
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f]', "", (card.family_name + card.given_name) or card.company)
    return f"{name or 'card'}.vcf"


async def room_vcard(request: Request) -> Response:
    return await vcard_response(request, await _room_card(request))


async def vcard_response(request: Request, card: CardData) -> Response:
    """The card as a UTF-8 vCard download (its photo inside), for the call and the guest マイページ."""
    photo = None
    if card.photo:
        key = card_key(card.user_id, card.photo)
        # A photo gone missing: the card without it. Our own 1024 px JPEG: decoding it here is cheap.
        with contextlib.suppress(NotFound, InvalidInput):
            if key is not None:
                stored = await services(request).storage.get(key)
                photo = await asyncio.to_thread(reencode, stored, VCARD_PHOTO_SIDE)
    filename = _filename(card)
    disposition = f"attachment; filename=\"card.vcf\"; filename*=UTF-8''{quote(filename, safe='')}"
    return Response(
        vcard(card, photo).encode("utf-8"),
        media_type="text/vcard; charset=utf-8",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


routes: list[BaseRoute] = [
    Route("/card", settings_page, methods=["GET"]),
    Route("/card", save_settings, methods=["POST"]),
    Route("/api/card/images", upload_image, methods=["POST"]),
    Route("/api/card/images/{slot}/delete", delete_image, methods=["POST"]),
    Route("/cards/{user_id:int}/{slot}.jpg", serve_image, methods=["GET"]),
    Route("/rooms/{room_id}/card", room_card, methods=["GET"]),
    Route("/rooms/{room_id}/card.vcf", room_vcard, methods=["GET"]),
]
