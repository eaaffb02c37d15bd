"""The guest's acknowledgements: which texts (利用規約, 個人情報の取扱い, プライバシーポリシー) a guest
browser agreed to, and when, before its meeting existed; bound to the meeting when the host lets the guest in.

The texts are stored once per distinct version (SHA-256 of the three), so the record shows exactly what was
accepted even after the org edits them. An acknowledgement that never led to a meeting is dropped a day later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.models import AcknowledgedTexts, GuestAcknowledgement

UNBOUND_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class Texts:
    terms_of_use: str
    personal_data_policy: str
    privacy_policy: str

    @property
    def digest(self) -> str:
        payload = json.dumps([self.terms_of_use, self.personal_data_policy, self.privacy_policy])
        return hashlib.sha256(payload.encode()).hexdigest()


async def acknowledge(
    db: AsyncSession,
    *,
    guest_token_hash: str,
    texts: Texts,
    via: str,
    language: str,
    at: datetime,
    org_id: int | None = None,
    room_id: str | None = None,
) -> None:
    """The guest browser (``guest_token_hash``) agreed to ``texts`` at ``at``."""
    digest = texts.digest
    if await db.get(AcknowledgedTexts, digest) is None:
        try:
            async with db.begin_nested():  # another guest may be storing the same version right now
                db.add(
                    AcknowledgedTexts(
                        digest=digest,
                        terms_of_use=texts.terms_of_use,
                        personal_data_policy=texts.personal_data_policy,
                        privacy_policy=texts.privacy_policy,
                    )
                )
        except IntegrityError:
            pass
    await db.execute(
        delete(GuestAcknowledgement).where(
            GuestAcknowledgement.room_id.is_(None), GuestAcknowledgement.accepted_at < at - UNBOUND_KEPT
        )
    )
    db.add(
        GuestAcknowledgement(
            guest_token_hash=guest_token_hash,
            room_id=room_id,
            org_id=org_id,
            via=via,
            language=language,
            texts=digest,
            accepted_at=at,
        )
    )
    await db.flush()


async def bind(db: AsyncSession, guest_token_hash: str, room_id: str, org_id: int) -> None:
    """The host let this guest in: its latest acknowledgement not yet bound belongs to ``room_id``."""
    latest = await db.scalar(
        select(GuestAcknowledgement.id)
        .where(
            GuestAcknowledgement.guest_token_hash == guest_token_hash, GuestAcknowledgement.room_id.is_(None)
        )
        .order_by(GuestAcknowledgement.id.desc())
        .limit(1)
    )
    if latest is not None:
        await db.execute(
            update(GuestAcknowledgement)
            .where(GuestAcknowledgement.id == latest)
            .values(room_id=room_id, org_id=org_id)
        )


async def for_room(db: AsyncSession, room_id: str) -> list[tuple[GuestAcknowledgement, AcknowledgedTexts]]:
    result = await db.execute(
        select(GuestAcknowledgement, AcknowledgedTexts)
        .join(AcknowledgedTexts, AcknowledgedTexts.digest == GuestAcknowledgement.texts)
        .where(GuestAcknowledgement.room_id == room_id)
        .order_by(GuestAcknowledgement.id)
    )
    return [(ack, texts) for ack, texts in result]
