"""Phone numbers, however they are typed, to E.164 (``+819012345678``), or a clear refusal.

Validity and the kind of number (mobile, landline, toll-free…) come from ``phonenumbers`` (the port of
Google's libphonenumber, with its per-country metadata); this module keeps the Japanese input habits in
front of it. A host types the number while on the phone, so every common spelling is accepted: national
(``090-1234-5678``, ``09012345678``), full-width (``０９０－１２３４－５６７８``), international
(``+81 90 1234 5678``, ``+81-90-1234-5678``, ``+81 (0)90 …``, ``81 90 …``), with spaces, parentheses,
dots and any kind of hyphen or dash between the digits, the katakana ー included.

Two questions are asked of a number: :func:`normalise_mobile` (the join link: only Japanese mobiles can
receive it; landlines, toll-free, IP phones (050) and M2M numbers (020) are refused with their own message)
and :func:`normalise_phone` (a customer's number, any valid one, for matching and search).
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from core.errors import N_, InvalidInput

NOT_A_NUMBER = N_("Enter the customer's mobile phone number, e.g. 090-1234-5678.")
NOT_A_MOBILE = N_("This is not a mobile number. SMS can only be sent to a mobile phone (070, 080 or 090).")
NOT_A_PHONE = N_("Enter a phone number with digits, e.g. 090-1234-5678 or 03-1234-5678.")

# Anything people put between digit groups. NFKC has already turned full-width forms (－ （ ） ＋ and the
# ideographic space) into ASCII; the dashes and the katakana long-vowel mark (ー, a common slip for a
# hyphen in Japanese input) survive NFKC, so they are listed here.
_SEPARATORS = re.compile(r"[\s\-.()\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff70]")
_MAX_INPUT = 64
_JAPAN = "81"
_REGION = "JP"
# 060 is set aside for mobiles (and libphonenumber lists it as such), like 070/080/090.
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def _compact(text: str) -> str | None:
    """``text`` as ``+`` and ASCII digits in a national or international form, or None.

    libphonenumber is lenient where a host's typing should not be: it reads ``tel:`` URIs, letters as
    keypad digits, any script's digits, and a national number without its trunk 0 (``9012345678``); so
    only plain digits (after NFKC) reach it, written with the trunk 0, a ``+``, or the country code."""
    if len(text) > _MAX_INPUT:
        return None
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    digits = compact[1:] if compact.startswith("+") else compact
    if not digits.isascii() or not digits.isdigit():
        return None
    if compact.startswith("+"):
        return compact
    if compact.startswith(_JAPAN):  # "81 90 1234 5678": a national number always starts with 0
        return "+" + compact
    return compact if compact.startswith("0") else None


def _parsed(text: str) -> phonenumbers.PhoneNumber | None:
    compact = _compact(text)
    if compact is None:
        return None
    if compact.startswith(f"+{_JAPAN}0"):  # "+81 (0)90 …": the trunk 0 written in brackets
        compact = f"+{_JAPAN}" + compact[len(_JAPAN) + 2 :]
    try:
        number = phonenumbers.parse(compact, _REGION)
    except NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def normalise_mobile(text: str) -> str:
    """Return the Japanese mobile number in ``text`` as E.164, e.g. ``"+819012345678"``.

    Raises :class:`~core.errors.InvalidInput` with :data:`NOT_A_MOBILE` for a valid Japanese number that
    is not a mobile, and with :data:`NOT_A_NUMBER` for anything else (another country's numbers included:
    the product's numbers, SMS sender and wording serve customers in Japan).
    """
    number = _parsed(text)
    if number is None or number.country_code != int(_JAPAN):
        raise InvalidInput(NOT_A_NUMBER)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidInput(NOT_A_MOBILE)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalise_phone(text: str) -> str:
    """Any valid phone number in ``text`` (Japanese when written nationally) as E.164.

    Raises :class:`~core.errors.InvalidInput` with :data:`NOT_A_PHONE`."""
    number = _parsed(text)
    if number is None:
        raise InvalidInput(NOT_A_PHONE)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def search_phone(text: str) -> str | None:
    """``text`` as E.164 when it reads as a whole phone number (a search box's query), else None."""
    number = _parsed(text)
    return None if number is None else phonenumbers.format_number(number, PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    """Whether the stored number can receive an SMS (a Japanese mobile)."""
    try:
        return normalise_mobile(e164) == e164
    except InvalidInput:
        return False


def display_mobile(e164: str) -> str:
    """A stored number as people read it: ``"+819012345678"`` → ``"090-1234-5678"`` (national format for
    Japanese numbers, international for others)."""
    try:
        number = phonenumbers.parse(e164, _REGION)
    except NumberParseException:
        return e164
    if not phonenumbers.is_valid_number(number):
        return e164
    kind = (
        PhoneNumberFormat.NATIONAL if number.country_code == int(_JAPAN) else PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, kind)


def national_number(e164: str) -> str:
    """``+819012345678`` as people write it in Japan: ``09012345678``."""
    return "0" + e164[len(_JAPAN) + 1 :] if e164.startswith(f"+{_JAPAN}") else e164
