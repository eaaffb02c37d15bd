"""The business card as plain data, and as a vCard 4.0 (RFC 6350) that address books on phones read."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class CardData:
    user_id: int
    family_name: str = ""
    given_name: str = ""
    family_name_reading: str = ""
    given_name_reading: str = ""
    company: str = ""
    title: str = ""
    phone: str = ""
    email: str = ""
    photo: str = ""
    images: tuple[str, str, str] = ("", "", "")

    def file(self, slot: str) -> str:
        return self.photo if slot == "photo" else self.images[int(slot) - 1]

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.family_name, self.given_name) if part)


def escape_text(value: str) -> str:
    """A vCard text value (RFC 6350 §3.4): backslash, comma, semicolon and newline escaped."""
    escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return _CONTROL.sub("", escaped)


def _param(value: str) -> str:
    # A quoted parameter value may not hold DQUOTE; its commas would split SORT-AS into components.
    return _CONTROL.sub("", value).replace('"', "").replace(",", " ")


def fold(line: str) -> str:
    """Fold at 75 octets (RFC 6350 §3.2): CRLF plus one space, never inside a UTF-8 character."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    limit = 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append("".join(current))
            current, size, limit = [" "], 1, 75
        current.append(char)
        size += width
    out.append("".join(current))
    return "\r\n".join(out)


def vcard(card: CardData, photo_jpeg: bytes | None = None) -> str:
    lines = ["BEGIN:VCARD", "VERSION:4.0"]
    readings = (card.family_name_reading, card.given_name_reading)
    sort_as = f';SORT-AS="{_param(readings[0])},{_param(readings[1])}"' if any(readings) else ""
    lines.append(f"N{sort_as}:{escape_text(card.family_name)};{escape_text(card.given_name)};;;")
    lines.append(f"FN:{escape_text(card.full_name or card.company)}")
    if card.family_name_reading:
        lines.append(f"X-PHONETIC-LAST-NAME:{escape_text(card.family_name_reading)}")
    if card.given_name_reading:
        lines.append(f"X-PHONETIC-FIRST-NAME:{escape_text(card.given_name_reading)}")
    if card.company:
        lines.append(f"ORG:{escape_text(card.company)}")
    if card.title:
        lines.append(f"TITLE:{escape_text(card.title)}")
    if card.phone:
        lines.append(f"TEL;TYPE=work:{escape_text(card.phone)}")
    if card.email:
        lines.append(f"EMAIL;TYPE=work:{escape_text(card.email)}")
    if photo_jpeg:
        lines.append(f"PHOTO:data:image/jpeg;base64,{base64.b64encode(photo_jpeg).decode('ascii')}")
    lines.append("END:VCARD")
    return "".join(fold(line) + "\r\n" for line in lines)
