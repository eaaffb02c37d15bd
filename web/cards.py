"""名刺: the host's business card, edited in settings, shown to guests, saved as vCard."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
