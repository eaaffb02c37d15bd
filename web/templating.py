"""Rendering pages: the request's language, its translator, and the common template context."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse

from core.errors import N_
from web.i18n import LANGUAGES, Translator, catalogue, negotiate
from web.middleware import csrf_token

TEMPLATES = Path(__file__).parent / "templates"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def warm_up() -> None:
    """Compile every page and read every catalogue once, at start-up: the first call page after a restart
    would otherwise spend some 0.5 s of the event loop on call.html and the .po file while both
    participants wait for it."""
    for name in environment.list_templates(extensions=["html"]):
        environment.get_template(name)
    for language in LANGUAGES:
        catalogue_json(language)


@cache
def catalogue_json(language: str) -> Markup:
    """The catalogue as the page embeds it for the browser code (the same for every page: made once)."""
    return Markup(json.dumps(catalogue(language), ensure_ascii=False).replace("</", "<\\/"))


SESSION_LANGUAGE = "lang"
ROLE_LABELS = {"admin": N_("Administrator"), "manager": N_("Manager"), "host": N_("Host")}


def language(request: HTTPConnection) -> str:
    """The signed-in user's choice, else this browser's choice, else Accept-Language, else Japanese."""
    chosen = request.session.get(SESSION_LANGUAGE) if "session" in request.scope else None
    if isinstance(chosen, str) and chosen in LANGUAGES:
        return chosen
    return negotiate(request.headers.get("accept-language"))


def translator(request: HTTPConnection) -> Translator:
    cached = getattr(request.state, "translator", None)
    if cached is None:
        cached = Translator(language(request))
        request.state.translator = cached
    return cached


def render(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    _ = translator(request)
    session = request.session if "session" in request.scope else {}
    page = environment.get_template(template).render(
        request=request,
        _=_,
        lang=_.language,
        languages=LANGUAGES,
        csrf_token=csrf_token(session) if "session" in request.scope else "",
        # The browser code's strings come from the same catalogue as the templates'.
        i18n_json=catalogue_json(_.language),
        user=getattr(request.state, "viewer", None),
        role_labels=ROLE_LABELS,
        **context,
    )
    return HTMLResponse(page, status_code=status_code, headers=headers)
