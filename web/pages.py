"""The main pages: the guest page, the host's connect screen, the manager console."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from store.models import Role
from web.auth import signed_in
from web.templating import render


async def guest_page(request: Request) -> Response:
    return render(request, "guest.html")


@signed_in()
async def host_home(request: Request) -> Response:
    return render(request, "host.html")


@signed_in(Role.ADMIN, Role.MANAGER)
async def manager_home(request: Request) -> Response:
    return render(request, "manage.html")


routes = [
    Route("/", guest_page, methods=["GET"]),
    Route("/host", host_home, methods=["GET"]),
    Route("/manage", manager_home, methods=["GET"]),
]
