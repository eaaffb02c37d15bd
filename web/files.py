"""ファイル送信: files sent in a call, both ways, streamed to room storage."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
