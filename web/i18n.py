"""Translations from Babel catalogues (``web/locale/<lang>/LC_MESSAGES/messages.po``).

Message ids are the English sentences; Japanese is the default language. Templates call ``_("…")`` and the
browser code calls ``t("…")`` on the same catalogue, which the page embeds as JSON.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"


@cache
def catalogue(language: str) -> dict[str, str]:
    """msgid → translated text for ``language``; untranslated entries are left out."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        catalog = read_po(f, locale=language)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and isinstance(message.id, str) and message.string
    }


class Translator:
    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.messages = catalogue(self.language)

    def gettext(self, msgid: str, **params: Any) -> str:
        text = self.messages.get(msgid, msgid)
        return text.format(**params) if params else text

    __call__ = gettext


def negotiate(accept_language: str | None) -> str:
    """Pick ja or en from an Accept-Language header; Japanese when it names neither or is absent."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE
