"""Small helpers for tests: seeding orgs and users, reading CSRF tokens, signing in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx
from starlette.applications import Starlette

from signaling.models import JoinedVia
from signaling.room import Send
from signaling.rooms import create_room
from store.models import Role
from web import accounts
from web.services import services

M = TypeVar("M")
PASSWORD = "correct-horse-battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Sent(Generic[M]):
    """A :class:`~signaling.room.Send` effect whose message is known to be an ``M``."""

    message: M
    to: str | None
    exclude: str | None


def sent(effects: Iterable[object], kind: type[M]) -> list[Sent[M]]:
    """The frames of type ``kind`` among a room's effects, in order."""
    return [
        Sent(e.message, e.to, e.exclude)
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, kind)
    ]


@dataclass
class Seeded:
    org_id: int
    users: dict[str, int]  # email -> id


async def seed_org(app: Starlette, slug: str, roles: dict[str, Role]) -> Seeded:
    async with services(app).sessions.begin() as db:
        org = await accounts.create_org(db, slug, slug.upper())
        ids = {}
        for email, role in roles.items():
            user = await accounts.add_user(db, org, email, email.split("@")[0], role, PASSWORD)
            ids[email] = user.id
        return Seeded(org.id, ids)


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def csrf_token(client: httpx.AsyncClient, path: str = "/login") -> str:
    response = await client.get(path)
    return csrf_from(response.text)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    token = await csrf_token(client)
    return await client.post("/login", data={"email": email, "password": password, "csrf_token": token})


async def store_room(app: Starlette, seeded: Seeded, home_node: str = "test") -> tuple[str, str]:
    """A waiting room of ``seeded``'s host, stored only (homed on ``home_node``): (room id, 接続ID)."""
    async with services(app).sessions.begin() as db:
        room, record = await create_room(
            db,
            org_id=seeded.org_id,
            host_id=seeded.users["host@acme.example"],
            via=JoinedVia.NUMBER,
            guest_token="guest",
            camera=True,
            recording=False,
            home_node=home_node,
            now=0,
        )
    return room.id, record.connect_id


async def open_room(app: Starlette, seeded: Seeded) -> tuple[str, str]:
    """A room of ``seeded``'s host, stored and opened on this node: (room id, 接続ID)."""
    room_id, connect_id = await store_room(app, seeded)
    await services(app).hub.open(room_id, connect_id)
    return room_id, connect_id
