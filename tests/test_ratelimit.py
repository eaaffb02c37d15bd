"""The sliding-window limiter: one contract, run in-process and on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.clock import ManualClock
from core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(3, 60.0, clock=clock)
    else:
        from redis.asyncio import Redis

        redis = Redis.from_url(request.getfixturevalue("redis_server").url)
        await redis.flushdb()
        yield RedisRateLimiter(redis, 3, 60.0, clock=clock, prefix="test")
        await redis.aclose()


async def test_under_the_limit_is_allowed(limiter: RateLimiter) -> None:
    for _ in range(2):
        await limiter.add("k")
    assert await limiter.retry_after("k") == 0


async def test_at_the_limit_says_how_long_to_wait(limiter: RateLimiter, clock: ManualClock) -> None:
    await limiter.add("k")
    clock.advance(10)
    await limiter.add("k")
    clock.advance(10)
    await limiter.add("k")
    assert await limiter.retry_after("k") == pytest.approx(40.0)
    assert await limiter.retry_after("other") == 0
    clock.advance(40.01)
    assert await limiter.retry_after("k") == 0


async def test_reset_forgets(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.add("k")
    assert await limiter.retry_after("k") > 0
    await limiter.reset("k")
    assert await limiter.retry_after("k") == 0


async def test_hit_counts_only_under_the_limit_and_on_every_key_or_none(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    first = await limiter.hit("account", "address")
    assert first.counted and first.retry_after == 0
    clock.advance(10)
    for _ in range(2):
        assert (await limiter.hit("address")).counted
    refused = await limiter.hit("account", "address")  # the address is full, so the account is not counted
    assert not refused.counted and refused.retry_after == pytest.approx(50.0)
    assert await limiter.retry_after("account") == 0
    await limiter.undo(refused)  # nothing to take back
    await limiter.undo(first)
    assert (await limiter.hit("address")).counted  # the first event is gone from both keys
    clock.advance(60)
    assert (await limiter.hit("account", "address")).counted


@pytest.mark.redis
async def test_two_nodes_share_counts_through_redis(redis, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    node_a = RedisRateLimiter(redis, 2, 60.0, clock=clock, prefix="shared")
    node_b = RedisRateLimiter(redis, 2, 60.0, clock=clock, prefix="shared")
    await node_a.add("host@acme")
    await node_b.add("host@acme")
    assert await node_a.retry_after("host@acme") > 0


def test_limits_must_make_sense(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        MemoryRateLimiter(0, 60, clock=clock)
    with pytest.raises(ValueError):
        clock.advance(-1)
