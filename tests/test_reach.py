"""The address a customer's phone can open (web/reach.py), and what the host's screen says about it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from core.clock import ManualClock
from signaling.models import SmsMessage
from store.models import Role
from tests.helpers import csrf_from, seed_org, sign_in
from web.app import create_app
from web.reach import LOOPBACK_ONLY, PLAIN_HTTP, phone_address
from web.services import services
from web.settings import Settings
from web.tls import lan_addresses

LAN = [ipaddress.ip_address("192.168.1.20"), ipaddress.ip_address("fd00::20")]


def test_public_url_wins(settings: Settings) -> None:
    public = replace(settings, public_url="https://meet.example.jp", host="0.0.0.0")
    found = phone_address(public, "http://127.0.0.1:8000/", lambda: LAN)
    assert (found.base, found.reachable, found.hint) == ("https://meet.example.jp", True, None)


def test_serving_on_all_interfaces_gives_phones_the_lan_address(settings: Settings) -> None:
    everywhere = replace(settings, host="0.0.0.0")
    found = phone_address(everywhere, "https://127.0.0.1:8443/", lambda: LAN)
    assert (found.base, found.reachable, found.hint) == ("https://192.168.1.20:8443", True, None)
    plain = phone_address(everywhere, "http://localhost:8000/", lambda: LAN)
    assert plain.base == "http://192.168.1.20:8000" and plain.hint == PLAIN_HTTP  # no camera over http
    v6 = phone_address(replace(settings, host="::"), "https://[::1]:8443/", lambda: LAN[1:])
    assert v6.base == "https://[fd00::20]:8443"


def test_loopback_only_keeps_the_address_and_says_how_to_serve_for_phones(settings: Settings) -> None:
    for host in ("127.0.0.1", "localhost"):
        found = phone_address(replace(settings, host=host), "http://127.0.0.1:8000/", lambda: LAN)
        assert (found.base, found.reachable, found.hint) == ("http://127.0.0.1:8000", False, LOOPBACK_ONLY)
    nothing = phone_address(replace(settings, host="0.0.0.0"), "http://127.0.0.1:8000/", lambda: [])
    assert nothing.hint == LOOPBACK_ONLY and not nothing.reachable  # no LAN (as in the test namespace)


def test_a_host_that_came_by_a_lan_address_keeps_it(settings: Settings) -> None:
    found = phone_address(settings, "https://192.168.1.20:8443/", lambda: [])
    assert (found.base, found.hint) == ("https://192.168.1.20:8443", None)
    named = phone_address(replace(settings, host="tsunagu.lan"), "https://127.0.0.1:8443/", lambda: [])
    assert named.base == "https://tsunagu.lan:8443"


def test_lan_addresses_are_never_loopback() -> None:
    assert all(not a.is_loopback and not a.is_link_local for a in lan_addresses())


async def test_make_run_on_loopback_tells_the_host_how_to_serve_for_phones(app: Starlette) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), base_url="http://127.0.0.1:8000"
    ) as host:
        await sign_in(host, "host@acme.example")
        page = (await host.get("/host")).text
    hint = re.search(r'<p id="phone-hint"[^>]*>(.*?)</p>', page, re.S)
    assert hint is not None
    assert "スマートフォンからは開けません" in hint.group(1)
    assert "tsunagu serve --self-signed --host 0.0.0.0" in hint.group(1)


async def test_the_qr_code_guest_url_and_sms_link_use_the_address_phones_can_open(
    settings: Settings, clock: ManualClock
) -> None:
    app = create_app(replace(settings, public_url="https://meet.example.jp"), clock=clock)
    async with app.router.lifespan_context(app):
        await seed_org(app, "acme", {"host@acme.example": Role.HOST})
        # PUBLIC_URL is https, so the session cookie is Secure: the client speaks https too.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        ) as host:
            await sign_in(host, "host@acme.example")
            page = (await host.get("/host")).text
            assert 'href="https://meet.example.jp/g/acme"' in page and 'id="phone-hint"' not in page
            token = csrf_from(page)
            sent = await host.post(
                "/api/rooms/link",
                json={"phone": "090-1234-5678"},
                headers={"X-CSRF-Token": token, "Accept": "application/json"},
            )
            assert sent.status_code == 201
        async with services(app).sessions() as db:
            sms = await db.scalar(select(SmsMessage))
        assert sms is not None and "https://meet.example.jp/j/" in sms.body
