"""Many real clients at once: each its own cookies, all released together by a barrier (not a loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from tests.joining import Browser

T = TypeVar("T")


async def together(browsers: list[Browser], act: Callable[[Browser], Awaitable[T]]) -> list[T]:
    """Run ``act`` for every browser at the same moment: each waits at one barrier, then acts."""
    barrier = asyncio.Barrier(len(browsers))

    async def one(browser: Browser) -> T:
        await barrier.wait()
        return await act(browser)

    return await asyncio.gather(*(one(browser) for browser in browsers))


async def browsers(base_url: str, count: int, first_page: str = "/") -> list[Browser]:
    """``count`` fresh browsers that each opened ``first_page`` (for a session cookie and a CSRF token)."""
    opened = [Browser(base_url) for _ in range(count)]
    for browser in opened:
        # A burst queues behind the server's bounded work (argon2, workers): answers may take seconds.
        browser.http.timeout = httpx.Timeout(60)
    await asyncio.gather(*(b.open(first_page) for b in opened))
    return opened


async def close_all(opened: list[Browser]) -> None:
    await asyncio.gather(*(b.aclose() for b in opened))
