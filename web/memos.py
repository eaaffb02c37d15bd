"""共有メモ: memo templates and the memo download; the memo's live sync runs on the room channel."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
