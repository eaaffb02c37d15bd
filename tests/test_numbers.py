"""Connect numbers: one contract, run in-process and on a real redis-server (also as two nodes)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from core.clock import ManualClock
from core.errors import Conflict, NotFound, TsunaguError, Unavailable
from signaling.numbers import (
    ConnectNumber,
    MemoryNumberStore,
    NumberExpired,
    NumbersCongested,
    NumberStore,
    NumberUnknown,
    NumberUsed,
    RedisNumberStore,
)

MakeStore = Callable[..., NumberStore]


def _pooled_redis(url: str):  # type: ignore[no-untyped-def]
    """A client whose connections are capped, as on a real node; 10,000 gathered calls then queue for them."""
    from redis.asyncio import BlockingConnectionPool, Redis

    return Redis.from_pool(BlockingConnectionPool.from_url(url, max_connections=32, timeout=20))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_store(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[MakeStore]:
    if request.param == "memory":
        yield lambda **options: MemoryNumberStore(clock=clock, **options)
    else:
        redis = _pooled_redis(request.getfixturevalue("redis_server").url)
        await redis.flushdb()
        yield lambda **options: RedisNumberStore(redis, clock=clock, prefix="test:numbers", **options)
        await redis.aclose()


@pytest.fixture
def store(make_store: MakeStore) -> NumberStore:
    return make_store()


async def issue_many(store: NumberStore, tokens: list[str]) -> list[ConnectNumber]:
    return list(await asyncio.gather(*(store.issue(token) for token in tokens)))


async def test_a_number_is_four_digits_bound_to_its_token(store: NumberStore, clock: ManualClock) -> None:
    issued = await store.issue("guest-a")
    assert re.fullmatch(r"[0-9]{4}", issued.number)
    assert issued == ConnectNumber(issued.number, "guest-a", clock.now, clock.now + 120.0)
    assert await store.current("guest-a") == issued
    assert await store.current("guest-b") is None
    assert await store.live_count() == 1


async def test_redeem_at_119_9_seconds_works_once(store: NumberStore, clock: ManualClock) -> None:
    issued = await store.issue("guest-a")
    clock.advance(119.9)
    assert await store.redeem(issued.number) == issued
    assert await store.live_count() == 0
    assert await store.current("guest-a") is None
    with pytest.raises(NumberUsed):
        await store.redeem(issued.number)
    clock.advance(500)  # still remembered as used, not "unknown"
    with pytest.raises(NumberUsed):
        await store.redeem(issued.number)


async def test_redeem_at_exactly_120_seconds_is_expired(store: NumberStore, clock: ManualClock) -> None:
    issued = await store.issue("guest-a")
    clock.advance(120.0)
    assert await store.current("guest-a") is None
    assert await store.live_count() == 0
    with pytest.raises(NumberExpired):
        await store.redeem(issued.number)


async def test_spent_numbers_are_remembered_for_ten_minutes(store: NumberStore, clock: ManualClock) -> None:
    expired = await store.issue("guest-a")
    used = await store.issue("guest-b")
    await store.redeem(used.number)
    clock.advance(120.0 + 599.0)
    with pytest.raises(NumberExpired):
        await store.redeem(expired.number)
    with pytest.raises(NumberUsed):
        await store.redeem(used.number)
    clock.advance(1.0)
    for number in (expired.number, used.number):
        with pytest.raises(NumberUnknown):
            await store.redeem(number)


@pytest.mark.parametrize("number", ["never issued", "12a4", "12345", "", "123", " 123", "１２３４", "١٢٣٤"])
async def test_unknown_and_malformed_numbers(store: NumberStore, number: str) -> None:
    issued = await store.issue("guest-a")
    if number == "never issued":
        number = f"{(int(issued.number) + 1) % 10_000:04d}"
    with pytest.raises(NumberUnknown):
        await store.redeem(number)
    assert await store.redeem(issued.number) == issued


async def test_reissue_revokes_the_previous_number(store: NumberStore) -> None:
    first = await store.issue("guest-a")
    second = await store.issue("guest-a")
    assert second.number != first.number
    assert await store.current("guest-a") == second
    assert await store.live_count() == 1
    with pytest.raises(NumberExpired):  # the customer's screen shows a newer number
        await store.redeem(first.number)
    assert await store.redeem(second.number) == second


async def test_revoke_drops_only_that_tokens_number(store: NumberStore) -> None:
    mine = await store.issue("guest-a")
    theirs = await store.issue("guest-b")
    await store.revoke("guest-a")
    await store.revoke("guest-a")
    await store.revoke("nobody")
    assert await store.current("guest-a") is None
    assert await store.live_count() == 1
    with pytest.raises(NumberExpired):
        await store.redeem(mine.number)
    assert await store.redeem(theirs.number) == theirs


async def test_one_number_redeems_once_under_concurrency(store: NumberStore) -> None:
    issued = await store.issue("guest-a")
    results = await asyncio.gather(*(store.redeem(issued.number) for _ in range(20)), return_exceptions=True)
    assert results.count(issued) == 1
    assert all(isinstance(r, NumberUsed) for r in results if r != issued)


async def test_congestion_at_the_capacity_limit(make_store: MakeStore, clock: ManualClock) -> None:
    store = make_store(capacity_limit=50)
    issued = await issue_many(store, [f"guest-{i}" for i in range(50)])
    assert len({n.number for n in issued}) == 50
    with pytest.raises(NumbersCongested):
        await store.issue("one-too-many")
    assert await store.live_count() == 50
    again = await store.issue("guest-0")  # re-issue frees the token's own number, so it fits
    assert again.number != issued[0].number
    await store.redeem(issued[1].number)
    await store.issue("now-there-is-room")
    with pytest.raises(NumbersCongested):
        await store.issue("full-again")
    clock.advance(120.0)
    assert await store.live_count() == 0
    await store.issue("after-expiry")


async def test_10_000_concurrent_issues_never_duplicate(make_store: MakeStore, clock: ManualClock) -> None:
    """Fill the whole space at once; then, with it full, only freed numbers can be drawn, so they must be."""
    store = make_store(capacity_limit=10_000)
    issued = await issue_many(store, [f"guest-{i}" for i in range(10_000)])
    assert len({n.number for n in issued}) == 10_000
    assert all(n.guest_token == f"guest-{i}" for i, n in enumerate(issued))
    assert await store.live_count() == 10_000
    with pytest.raises(NumbersCongested):
        await store.issue("one-too-many")
    with pytest.raises(NumbersCongested):  # no other number to move guest-0 to, and it keeps its own
        await store.issue("guest-0")
    assert await store.current("guest-0") == issued[0]

    await store.redeem(issued[0].number)
    assert (await store.issue("after-redeem")).number == issued[0].number

    await store.revoke("guest-1")
    await store.revoke("guest-2")
    freed = {issued[1].number, issued[2].number}
    seen: Counter[str] = Counter()
    for i in range(40):  # the complement pick is uniform, so both free numbers come up
        number = (await store.issue(f"cycle-{i}")).number
        assert number in freed
        seen[number] += 1
        await store.revoke(f"cycle-{i}")
    assert set(seen) == freed

    clock.advance(120.0)  # everything expires; expired numbers are free again, not "expired" to new holders
    assert await store.live_count() == 0
    renewed = await issue_many(store, [f"next-{i}" for i in range(20)])
    assert [await store.redeem(n.number) for n in renewed] == renewed


async def test_draws_spread_over_the_whole_space(store: NumberStore) -> None:
    """Rough uniformity: 1,000 issue/revoke cycles hit every digit in every position, evenly enough."""
    positions: list[Counter[str]] = [Counter() for _ in range(4)]
    for _ in range(1_000):
        number = (await store.issue("guest-a")).number
        await store.revoke("guest-a")
        for counter, digit in zip(positions, number, strict=True):
            counter[digit] += 1
    for counter in positions:
        assert set(counter) == set("0123456789")
        assert all(50 <= count <= 160 for count in counter.values()), counter  # 100 expected, sd 9.5


@pytest.mark.redis
async def test_two_redis_nodes_never_share_a_live_number(redis_server, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    node_a, node_b = _pooled_redis(redis_server.url), _pooled_redis(redis_server.url)
    await node_a.flushdb()
    try:
        store_a = RedisNumberStore(node_a, clock=clock, capacity_limit=10_000, prefix="test:nodes")
        store_b = RedisNumberStore(node_b, clock=clock, capacity_limit=10_000, prefix="test:nodes")
        issued = await asyncio.gather(
            issue_many(store_a, [f"a-{i}" for i in range(5_000)]),
            issue_many(store_b, [f"b-{i}" for i in range(5_000)]),
        )
        numbers = {n.number for batch in issued for n in batch}
        assert len(numbers) == 10_000
        assert await store_a.live_count() == await store_b.live_count() == 10_000
        with pytest.raises(NumbersCongested):
            await store_b.issue("one-too-many")
        assert await store_b.redeem(issued[0][0].number) == issued[0][0]
        with pytest.raises(NumberUsed):
            await store_a.redeem(issued[0][0].number)
        assert await store_a.current("b-7") == issued[1][7]
    finally:
        await node_a.aclose()
        await node_b.aclose()


def test_errors_have_stable_codes_and_statuses() -> None:
    expected: list[tuple[type[TsunaguError], type[TsunaguError], str, int]] = [
        (NumberUnknown, NotFound, "number_unknown", 404),
        (NumberExpired, TsunaguError, "number_expired", 410),
        (NumberUsed, Conflict, "number_used", 409),
        (NumbersCongested, Unavailable, "numbers_congested", 503),
    ]
    for error, parent, code, status in expected:
        assert issubclass(error, parent)
        assert (error.code, error.status) == (code, status)
        assert str(error()) == error.message


@pytest.mark.parametrize("options", [{"ttl": 0}, {"capacity_limit": 0}, {"capacity_limit": 10_001}])
def test_settings_must_make_sense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MemoryNumberStore(**options)  # type: ignore[arg-type]
