"""The worst id a client types into a path: a number longer than any database id. Every route that takes an
id answers 404, whoever asks and whatever the method, and nothing reaches the database (SQLite refuses an
integer past 2**63: it used to be a 500)."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.routing import Route

from store.models import Role
from tests.conftest import make_client
from tests.helpers import csrf_token, seed_org, sign_in

HUGE = "9" * 30


async def test_an_id_longer_than_any_row_is_404_on_every_route(app: Starlette) -> None:
    await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    routes = [route for route in app.routes if isinstance(route, Route) and ":int}" in route.path]
    assert len(routes) > 30  # files, documents, records, recordings, deals, quotes, the マイページ, …
    async with make_client(app) as client:
        await sign_in(client, "admin@acme.example")
        client.headers["X-CSRF-Token"] = await csrf_token(client, "/documents")
        for route in routes:
            path = re.sub(r"\{\w+:int\}", HUGE, route.path)
            path = re.sub(r"\{\w+(:\w+)?\}", "x", path)  # any other parameter: a plain word
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD":
                    continue
                response = await client.request(method, path)
                assert response.status_code == 404, (method, path, response.status_code)
