"""商談先情報: who a meeting was with (name, reading, company, phone, notes, tags), filled in after the call
by its host or a manager. Every change is logged field by field with who made it and when (``RecordEdit``),
and the record's search index is rewritten in the same transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, InvalidInput
from recordings.models import MeetingRecord, MeetingTag, RecordEdit
from recordings.search import grams_for, index_records

# Field -> the most characters it holds (the column's size; notes are capped to keep records readable).
LIMITS = {"guest_name": 100, "guest_reading": 100, "guest_company": 200, "guest_phone": 40, "notes": 4000}
MAX_TAGS = 10
TAG_MAX = 30
_TAG_SPLIT = re.compile(r"[,、，\s]+")
_PHONE = re.compile(r"^[0-9+\-() ]*$")


class BadGuestInfo(InvalidInput):
    code = "bad_guest_info"
    message = N_("{field} must be at most {max} characters.")


class BadPhone(InvalidInput):
    code = "bad_phone"
    message = N_("Enter the phone number with digits, hyphens, spaces, + and parentheses only.")


class TooManyTags(InvalidInput):
    code = "too_many_tags"
    message = N_("Up to {max} tags of up to {length} characters each.")


FIELD_LABELS = {
    "guest_name": N_("Customer name"),
    "guest_reading": N_("Reading (furigana)"),
    "guest_company": N_("Company"),
    "guest_phone": N_("Phone"),
    "notes": N_("Notes"),
    "tags": N_("Tags"),
}


@dataclass(frozen=True)
class GuestInfo:
    guest_name: str = ""
    guest_reading: str = ""
    guest_company: str = ""
    guest_phone: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()

    @classmethod
    def clean(cls, raw: dict[str, str]) -> GuestInfo:
        """From a form: trimmed, NFC, CRLF as LF, checked; :class:`InvalidInput` says what is wrong."""
        values: dict[str, str] = {}
        for name, limit in LIMITS.items():
            value = unicodedata.normalize("NFC", raw.get(name, "")).replace("\r\n", "\n").replace("\r", "\n")
            value = value.strip() if name == "notes" else " ".join(value.split())
            if len(value) > limit:
                raise BadGuestInfo(field=FIELD_LABELS[name], max=f"{limit:,}")
            values[name] = value
        phone = unicodedata.normalize("NFKC", values["guest_phone"])
        if not _PHONE.match(phone):
            raise BadPhone()
        values["guest_phone"] = phone
        return cls(**values, tags=clean_tags(raw.get("tags", "")))


def clean_tags(raw: str) -> tuple[str, ...]:
    """Tags as typed (commas, 、 or spaces between them), NFKC, without a leading #, each once, in order."""
    tags: list[str] = []
    for part in _TAG_SPLIT.split(unicodedata.normalize("NFKC", raw)):
        tag = part.strip().lstrip("#＃")
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS or any(len(tag) > TAG_MAX for tag in tags):
        raise TooManyTags(max=MAX_TAGS, length=TAG_MAX)
    return tuple(tags)


async def record_tags(db: AsyncSession, record_id: int) -> tuple[str, ...]:
    result = await db.scalars(
        select(MeetingTag.tag).where(MeetingTag.record_id == record_id).order_by(MeetingTag.id)
    )
    return tuple(result)


def current(record: MeetingRecord, tags: tuple[str, ...]) -> GuestInfo:
    return GuestInfo(
        guest_name=record.guest_name,
        guest_reading=record.guest_reading,
        guest_company=record.guest_company,
        guest_phone=record.guest_phone,
        notes=record.notes,
        tags=tags,
    )


async def reindex(db: AsyncSession, record: MeetingRecord, tags: tuple[str, ...] | None = None) -> None:
    """Rewrite the record's search entry from its memo and 商談先情報."""
    if tags is None:
        tags = await record_tags(db, record.id)
    grams = grams_for(
        memo=record.memo,
        guest_name=record.guest_name,
        guest_reading=record.guest_reading,
        guest_company=record.guest_company,
        guest_phone=record.guest_phone,
        notes=record.notes,
        tags=tags,
    )
    await index_records(db, [(record.id, grams)])


async def edit(
    db: AsyncSession, record: MeetingRecord, info: GuestInfo, editor_id: int, editor_name: str, at: datetime
) -> list[str]:
    """Apply ``info`` to ``record``; returns the fields that changed (each logged once)."""
    before = current(record, await record_tags(db, record.id))
    changed: list[str] = []
    for name in LIMITS:
        old, new = getattr(before, name), getattr(info, name)
        if old != new:
            changed.append(name)
            setattr(record, name, new)
            db.add(
                RecordEdit(
                    record_id=record.id,
                    editor_id=editor_id,
                    editor_name=editor_name,
                    field=name,
                    old=old,
                    new=new,
                    at=at,
                )
            )
    if before.tags != info.tags:
        changed.append("tags")
        db.add(
            RecordEdit(
                record_id=record.id,
                editor_id=editor_id,
                editor_name=editor_name,
                field="tags",
                old=", ".join(before.tags),
                new=", ".join(info.tags),
                at=at,
            )
        )
        await db.execute(delete(MeetingTag).where(MeetingTag.record_id == record.id))
        if info.tags:
            await db.execute(
                insert(MeetingTag),
                [{"record_id": record.id, "org_id": record.org_id, "tag": tag} for tag in info.tags],
            )
    if changed:
        await db.flush()
        await reindex(db, record, info.tags)
    return changed


async def edits(db: AsyncSession, record_id: int) -> list[RecordEdit]:
    """The record's change log, oldest first."""
    result = await db.scalars(
        select(RecordEdit).where(RecordEdit.record_id == record_id).order_by(RecordEdit.id)
    )
    return list(result)
