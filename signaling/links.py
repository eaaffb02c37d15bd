"""SMS join links (接続用URL): single-use, expiring tokens that put a guest straight into a host's room.

Only the token's SHA-256 is stored. Opening the link and accepting the terms binds the guest's browser to
the room, exactly as a redeemed connect number does.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, Conflict, NotFound, TsunaguError
from signaling.models import JoinLink, RoomRow, RoomState
from signaling.rooms import as_utc, at, token_hash

DEFAULT_LINK_TTL_SECONDS = 30 * 60


class LinkUnknown(NotFound):
    code = "link_unknown"
    message = N_("This link is not valid. Please ask your representative to send it again.")


class LinkExpired(TsunaguError):
    code = "link_expired"
    status = 410
    message = N_("This link has expired. Please ask your representative to send a new one.")


class LinkUsed(Conflict):
    code = "link_used"
    message = N_("This link has already been used. Please ask your representative to send a new one.")


async def create_link(db: AsyncSession, room: RoomRow, phone: str, now: float, ttl: float) -> str:
    """Store a new link for ``room`` and return its token (shown only in the SMS)."""
    token = secrets.token_urlsafe(24)
    db.add(
        JoinLink(
            token_hash=token_hash(token),
            org_id=room.org_id,
            room_id=room.id,
            host_id=room.host_id,
            phone=phone,
            created_at=at(now),
            expires_at=at(now + ttl),
        )
    )
    await db.flush()
    return token


async def check_link(db: AsyncSession, token: str, now: float) -> JoinLink:
    """The link if it may still be used; raises LinkUnknown, LinkExpired or LinkUsed."""
    link = await db.scalar(select(JoinLink).where(JoinLink.token_hash == token_hash(token)))
    if link is None:
        raise LinkUnknown()
    if link.used_at is not None:
        raise LinkUsed()
    room = await db.get(RoomRow, link.room_id)
    if at(now) >= as_utc(link.expires_at) or room is None or room.state == RoomState.ENDED:
        raise LinkExpired()
    return link


async def accept_link(db: AsyncSession, token: str, guest_token: str, now: float) -> RoomRow:
    """Use the link once: bind this guest browser to the room. Atomic against two browsers racing."""
    link = await check_link(db, token, now)
    used = await db.execute(
        update(JoinLink).where(JoinLink.id == link.id, JoinLink.used_at.is_(None)).values(used_at=at(now))
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise LinkUsed()
    room = await db.get(RoomRow, link.room_id)
    assert room is not None
    room.guest_token_hash = token_hash(guest_token)
    return room
