"""Connect numbers: one contract, run in-process and on a real redis-server (also as two nodes)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

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

MakeNodes = Callable[..., list[NumberStore]]


def _pooled_redis(url: str) -> Redis:
    """A client whose connections are capped, as on a real node; 10,000 gathered calls then queue for them.
    The queue may take longer than any fixed per-call wait on a busy machine, so the wait is unbounded here;
    the suite's pytest timeout bounds the test. redis-py's own 5 s socket timeouts include the time 10,000
    gathered tasks keep the event loop from reading a reply, which a loaded 2-core box exceeds: 60 s here."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=32, timeout=None, socket_timeout=60, socket_connect_timeout=60
    )
    return Redis.from_pool(pool)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_nodes(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[MakeNodes]:
    """``make_nodes(count, **options)``: stores sharing one set of numbers, as the nodes of a cluster would.
    In-process that is one store seen ``count`` times; on Redis, one RedisNumberStore per client."""
    if request.param == "memory":

        def memory_nodes(count: int = 1, **options: Any) -> list[NumberStore]:
            return [MemoryNumberStore(clock=clock, **options)] * count

        yield memory_nodes
    else:
        url = request.getfixturevalue("redis_server").url
        clients = [_pooled_redis(url)]
        await clients[0].flushdb()

        def redis_nodes(count: int = 1, **options: Any) -> list[NumberStore]:
            clients.extend(_pooled_redis(url) for _ in range(count - len(clients)))
            return [
                RedisNumberStore(client, clock=clock, prefix="test:numbers", **options)
                for client in clients[:count]
            ]

        yield redis_nodes
        for client in clients:
            await client.aclose()


@pytest.fixture
def store(make_nodes: MakeNodes) -> NumberStore:
    return make_nodes()[0]


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


async def test_congestion_at_the_capacity_limit(make_nodes: MakeNodes, clock: ManualClock) -> None:
    (store,) = make_nodes(capacity_limit=50)
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


async def test_10_000_concurrent_issues_never_duplicate(make_nodes: MakeNodes, clock: ManualClock) -> None:
    """Two nodes fill the whole space at once (on Redis: two stores on two clients of one server). Then, with
    it full, only freed numbers can be drawn, so redeemed, revoked and expired numbers must come back."""
    node_a, node_b = make_nodes(2, capacity_limit=10_000)
    tokens = [f"guest-{i}" for i in range(10_000)]
    issued = await asyncio.gather(*((node_a, node_b)[i % 2].issue(token) for i, token in enumerate(tokens)))
    assert len({n.number for n in issued}) == 10_000
    assert [n.guest_token for n in issued] == tokens
    assert await node_a.live_count() == await node_b.live_count() == 10_000
    for node in (node_a, node_b):
        with pytest.raises(NumbersCongested):
            await node.issue("one-too-many")
    with pytest.raises(NumbersCongested):  # no other number to move guest-0 to, and it keeps its own
        await node_b.issue("guest-0")
    assert await node_b.current("guest-0") == issued[0]

    assert await node_b.redeem(issued[0].number) == issued[0]  # issued through node_a
    with pytest.raises(NumberUsed):
        await node_a.redeem(issued[0].number)
    assert (await node_a.issue("after-redeem")).number == issued[0].number

    await node_a.revoke("guest-1")
    await node_b.revoke("guest-2")
    freed = {issued[1].number, issued[2].number}
    seen: Counter[str] = Counter()
    for i in range(40):  # the complement pick is uniform, so both free numbers come up
        number = (await node_a.issue(f"cycle-{i}")).number
        assert number in freed
        seen[number] += 1
        await node_b.revoke(f"cycle-{i}")
    assert set(seen) == freed

    clock.advance(120.0)  # everything expires; expired numbers are free again, not "expired" to new holders
    assert await node_a.live_count() == 0
    renewed = await issue_many(node_a, [f"next-{i}" for i in range(20)])
    assert [await node_b.redeem(n.number) for n in renewed] == renewed


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
def test_settings_must_make_sense(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MemoryNumberStore(**options)
