"""One-time codes: a link opened in a browser the page does not know asks for 6 digits sent to the same
phone or email. A code lives :data:`LIFETIME`; it takes :data:`TRIES` guesses, then it is locked and only a
new code helps (new codes per link are rate-limited by the caller: web/mypage.py).

Each guess first claims a try with one conditional UPDATE (``tries < TRIES`` and not expired, not used),
committed before the code is compared: guesses arriving at once are serialised by the database on that
row, so no more than :data:`TRIES` are ever compared, whatever the number sent together. The right code is
then used once (a second conditional UPDATE)."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import utc
from mypage.models import MypageCode

DIGITS = 6
LIFETIME = timedelta(minutes=10)
TRIES = 5


class Verdict(enum.StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # a try spent; ``left`` more
    LOCKED = "locked"  # no try left: ask for a new code
    EXPIRED = "expired"  # too old, or already used: ask for a new code
    NONE = "none"  # no code was ever sent for this link


@dataclass(frozen=True)
class Checked:
    verdict: Verdict
    left: int = 0


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def well_formed(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


async def new_code(db: AsyncSession, link_id: int, now: datetime) -> str:
    """A fresh code for the link (the older ones stop counting: only the newest is checked)."""
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    salt = secrets.token_hex(16)
    db.add(
        MypageCode(
            link_id=link_id,
            code_hash=_hash(salt, code),
            salt=salt,
            created_at=now,
            expires_at=now + LIFETIME,
            tries=0,
        )
    )
    await db.flush()
    return code


async def current(db: AsyncSession, link_id: int) -> MypageCode | None:
    return await db.scalar(
        select(MypageCode).where(MypageCode.link_id == link_id).order_by(MypageCode.id.desc()).limit(1)
    )


async def check(
    sessions: async_sessionmaker[AsyncSession], link_id: int, code: str, now: datetime
) -> Checked:
    """Spend one try of the link's newest code on ``code`` (see the module docstring)."""
    async with sessions.begin() as db:
        newest = await current(db, link_id)
        if newest is None:
            return Checked(Verdict.NONE)
        code_id = newest.id
        claimed = await db.execute(
            update(MypageCode)
            .where(
                MypageCode.id == code_id,
                MypageCode.tries < TRIES,
                MypageCode.expires_at > now,
                MypageCode.used_at.is_(None),
            )
            .values(tries=MypageCode.tries + 1)
            .returning(MypageCode.tries)
            .execution_options(synchronize_session=False)
        )
        spent = claimed.scalar_one_or_none()  # this guess's try number: later guesses' don't change it
        if spent is None:
            usable = newest.used_at is None and utc(newest.expires_at) > now
            return Checked(Verdict.LOCKED if usable else Verdict.EXPIRED)
    # The try is committed before the comparison: a crash here still counts it.
    async with sessions.begin() as db:
        row = await db.get(MypageCode, code_id)
        assert row is not None
        if not (well_formed(code) and hmac.compare_digest(row.code_hash, _hash(row.salt, code))):
            left = TRIES - spent
            return Checked(Verdict.WRONG, left) if left > 0 else Checked(Verdict.LOCKED)
        used = await db.execute(
            update(MypageCode)
            .where(MypageCode.id == code_id, MypageCode.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return Checked(Verdict.ACCEPTED if used.rowcount == 1 else Verdict.EXPIRED)  # type: ignore[attr-defined]
