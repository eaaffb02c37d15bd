"""Finding 6: the lobby socket skipped the Origin check docs/security.md promises, and one cookie could
hold 500 of them. Real sockets against the live server, opened together behind a barrier."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signaling.protocol import CloseCode
from tests.abuse.clients import browsers, close_all
from tests.harness.live import LiveServer
from tests.joining import Browser
from web.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, lobby_sockets_per_guest=3, lobby_sockets_per_address=8)


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    yield live_server


async def outcome(ws: ClientConnection) -> str:
    """The socket's fate: "open" while the server keeps it waiting, else the code it was closed with."""
    try:
        await asyncio.wait_for(ws.recv(), 1.0)
    except TimeoutError:
        return "open"
    except ConnectionClosed as closed:
        return str(closed.rcvd.code) if closed.rcvd else "dropped"
    return "message"


async def open_together(stack: AsyncExitStack, openers: list[Browser]) -> Counter[str]:
    barrier = asyncio.Barrier(len(openers))

    async def one(browser: Browser) -> ClientConnection:
        await barrier.wait()
        return await stack.enter_async_context(browser.websocket("/ws/lobby"))

    sockets = await asyncio.gather(*(one(browser) for browser in openers))
    return Counter(await asyncio.gather(*(outcome(ws) for ws in sockets)))


async def test_another_sites_handshake_is_refused(server: LiveServer) -> None:
    guest = Browser(server.url)
    await guest.open("/")
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with guest.websocket("/ws/lobby", origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with guest.websocket("/ws/lobby") as own:  # the page's own handshake waits as before
            assert await outcome(own) == "open"
    finally:
        await guest.aclose()


async def test_one_browser_holds_three_lobby_sockets_at_most(server: LiveServer) -> None:
    guest = Browser(server.url)
    await guest.open("/")
    try:
        async with AsyncExitStack() as stack:
            outcomes = await open_together(stack, [guest] * 10)
        assert outcomes == {"open": 3, str(int(CloseCode.TOO_MANY_SOCKETS)): 7}
        async with guest.websocket("/ws/lobby") as again:  # the closed ones gave their slots back
            assert await outcome(again) == "open"
    finally:
        await guest.aclose()


async def test_one_address_holds_its_share_of_lobby_sockets(server: LiveServer) -> None:
    guests = await browsers(server.url, 12)  # twelve browsers, one address (127.0.0.1)
    try:
        async with AsyncExitStack() as stack:
            outcomes = await open_together(stack, guests)
        assert outcomes == {"open": 8, str(int(CloseCode.TOO_MANY_SOCKETS)): 4}
    finally:
        await close_all(guests)
