"""Server-side sign-in sessions: what makes a session cookie worth anything, and how it stops being.

The signed cookie carries only a random token (32 bytes from the CSPRNG); the ``login_sessions`` row, keyed by
the token's SHA-256, is the session. A cookie whose row is gone signs nobody in, so a session ends at once and
everywhere: signing out deletes its row, a password change or a deactivation deletes every row of the user.
Rows expire after :data:`LIFETIME` (the cookie's own lifetime too) by the injected clock.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store.models import LoginSession, User

LIFETIME = 12 * 3600  # seconds; also the cookie's max-age


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def start(db: AsyncSession, user_id: int, now: float) -> str:
    """A new session for ``user_id``; returns the token for the cookie. Clears the user's expired rows."""
    await db.execute(
        delete(LoginSession).where(LoginSession.user_id == user_id, LoginSession.expires_at <= _moment(now))
    )
    token = secrets.token_urlsafe(32)
    db.add(
        LoginSession(
            id=_digest(token), user_id=user_id, created_at=_moment(now), expires_at=_moment(now + LIFETIME)
        )
    )
    await db.flush()
    return token


async def user_of(db: AsyncSession, token: str, now: float) -> User | None:
    """The active user whose live session ``token`` is, with its org loaded; None otherwise."""
    user = await db.scalar(
        select(User)
        .join(LoginSession, LoginSession.user_id == User.id)
        .options(selectinload(User.org))
        .where(LoginSession.id == _digest(token), LoginSession.expires_at > _moment(now))
    )
    return user if user is not None and user.is_active else None


async def end(db: AsyncSession, token: str) -> None:
    """Sign-out: this session only."""
    await db.execute(delete(LoginSession).where(LoginSession.id == _digest(token)))


async def end_all(db: AsyncSession, user_id: int) -> None:
    """Password change, deactivation: every session of the user, on every browser."""
    await db.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
