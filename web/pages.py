"""The manager console."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from store.models import Role
from web.auth import signed_in
from web.templating import render


@signed_in(Role.ADMIN, Role.MANAGER)
async def manager_home(request: Request) -> Response:
    return render(request, "manage.html")


routes = [
    Route("/manage", manager_home, methods=["GET"]),
]
