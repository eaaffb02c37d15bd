"""Customers' mobile numbers: however they are typed, to E.164 (``+819012345678``), or a clear refusal.

A host types the number while on the phone, so every common spelling is accepted: national
(``090-1234-5678``, ``09012345678``), full-width (``０９０－１２３４－５６７８``), international
(``+81 90 1234 5678``, ``+81-90-1234-5678``, ``+81 (0)90 …``, ``81 90 …``), with spaces, parentheses,
dots and any kind of hyphen or dash between the digits. Only Japanese mobile numbers can receive the join
link, so landlines, toll-free, IP phones (050) and M2M numbers (020) are refused with their own message.
"""

from __future__ import annotations

import re
import unicodedata

from core.errors import N_, InvalidInput

NOT_A_NUMBER = N_("Enter the customer's mobile phone number, e.g. 090-1234-5678.")
NOT_A_MOBILE = N_("This is not a mobile number. SMS can only be sent to a mobile phone (070, 080 or 090).")

# Anything people put between digit groups. NFKC has already turned full-width forms (－ （ ） ＋ and the
# ideographic space) into ASCII; the dashes and the katakana long-vowel mark (ー, a common slip for a
# hyphen in Japanese input) survive NFKC, so they are listed here.
_SEPARATORS = re.compile(r"[\s\-.()\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff70]")
_MAX_INPUT = 64
# 060/070/080/090, then a subscriber number that does not start with 0 (0800 is toll-free, not mobile).
_MOBILE = re.compile(r"0[6789]0[1-9]\d{7}")
# Japanese numbers that exist but cannot receive SMS: geographic and 0120/0570/0990 numbers (10 digits),
# IP phones 050, M2M/pagers 020 and toll-free 0800 (11 digits).
_NOT_MOBILE = re.compile(r"0[1-9][1-9]\d{7}|0[25]0[1-9]\d{7}|0800\d{7}")
_JAPAN = "81"


def normalise_mobile(text: str) -> str:
    """Return the Japanese mobile number in ``text`` as E.164, e.g. ``"+819012345678"``.

    Raises :class:`~core.errors.InvalidInput` with :data:`NOT_A_MOBILE` for a valid Japanese number that
    is not a mobile, and with :data:`NOT_A_NUMBER` for anything else.
    """
    if len(text) > _MAX_INPUT:
        raise InvalidInput(NOT_A_NUMBER)
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    if compact.startswith("+"):
        digits = compact[1:]
        # Japan only for now: another country code is refused like any malformed input, since the product
        # (numbers, SMS sender, wording) serves customers in Japan.
        if not digits.startswith(_JAPAN):
            raise InvalidInput(NOT_A_NUMBER)
        national = _national(digits[len(_JAPAN) :])
    elif compact.startswith(_JAPAN):
        # "81 90 1234 5678" without the plus: a national number always starts with 0, so no ambiguity.
        national = _national(compact[len(_JAPAN) :])
    else:
        national = compact
    if not national.isascii() or not national.isdigit():
        raise InvalidInput(NOT_A_NUMBER)
    if _MOBILE.fullmatch(national):
        return f"+{_JAPAN}{national[1:]}"
    if _NOT_MOBILE.fullmatch(national):
        raise InvalidInput(NOT_A_MOBILE)
    raise InvalidInput(NOT_A_NUMBER)


def _national(after_country_code: str) -> str:
    """The national form after +81: put back the trunk 0, unless it was written as in "+81 (0)90 …"."""
    return after_country_code if after_country_code.startswith("0") else "0" + after_country_code


def display_mobile(e164: str) -> str:
    """A stored mobile number as the host reads it: ``"+819012345678"`` → ``"090-1234-5678"``."""
    if e164.startswith(f"+{_JAPAN}") and len(e164) == 13:
        national = "0" + e164[3:]
        return f"{national[:3]}-{national[3:7]}-{national[7:]}"
    return e164


def national_number(e164: str) -> str:
    """``+819012345678`` as people write it in Japan: ``09012345678``."""
    return "0" + e164[len(_JAPAN) + 1 :] if e164.startswith(f"+{_JAPAN}") else e164
