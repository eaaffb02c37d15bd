"""One pipeline for a node's publishes and pushes (signaling/redis_batch.py), on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from signaling.broker import BrokerClosed
from signaling.redis_batch import Batcher
from signaling.redis_broker import RedisBroker
from tests.harness.ports import free_port

if TYPE_CHECKING:
    from redis.asyncio import Redis

pytestmark = pytest.mark.redis


@pytest.fixture
async def batcher(redis: Redis) -> AsyncIterator[Batcher]:
    batcher = Batcher(redis)
    yield batcher
    await batcher.aclose()


async def test_commands_sent_meanwhile_go_in_one_pipeline_in_call_order(
    batcher: Batcher, redis: Redis
) -> None:
    replies = await asyncio.wait_for(
        asyncio.gather(*(batcher.execute(("RPUSH", "list", str(n))) for n in range(50))), 5
    )
    # Each caller gets its own reply: the list's length after its RPUSH, so the calls ran in call order.
    assert [reply for (reply,) in replies] == list(range(1, 51))
    assert await redis.lrange("list", 0, -1) == [str(n).encode() for n in range(50)]
    assert batcher.commands == 50
    assert batcher.batches < 5  # the first goes alone; those queued meanwhile go together


async def test_one_callers_commands_run_together_and_in_its_order(batcher: Batcher, redis: Redis) -> None:
    replies = await batcher.execute(("SET", "k", "1"), ("INCR", "k"), ("EXPIRE", "k", 60))
    assert replies == [True, 2, True]
    assert 0 < await redis.ttl("k") <= 60


async def test_a_command_error_goes_to_its_caller_only(batcher: Batcher, redis: Redis) -> None:
    from redis.exceptions import ResponseError

    await redis.set("text", "not a list")
    results: list[Any] = await asyncio.gather(
        batcher.execute(("RPUSH", "text", "x")),
        batcher.execute(("RPUSH", "list", "x")),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError)
    assert results[1] == [1]


async def test_a_caller_cancelled_before_its_batch_is_sent_sends_nothing(
    batcher: Batcher, redis: Redis
) -> None:
    first = batcher.submit(("RPUSH", "list", "first"))
    cancelled = batcher.submit(("RPUSH", "list", "cancelled"))
    kept = batcher.submit(("RPUSH", "list", "kept"))
    cancelled.cancel()  # before the batcher's task has run at all
    assert list(await asyncio.wait_for(asyncio.gather(first, kept), 5)) == [[1], [2]]
    assert await redis.lrange("list", 0, -1) == [b"first", b"kept"]


async def test_an_unreachable_redis_fails_every_caller_of_the_batch() -> None:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    nowhere = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    batcher = Batcher(nowhere)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(batcher.execute(("PUBLISH", "c", str(n))) for n in range(3)), return_exceptions=True
            ),
            5,
        )
        assert all(isinstance(result, RedisConnectionError) for result in results)
    finally:
        await batcher.aclose()
        await nowhere.aclose()
    with pytest.raises(BrokerClosed):
        await batcher.execute(("PUBLISH", "c", "late"))


async def test_a_brokers_publishes_and_pushes_share_its_pipeline(redis: Redis) -> None:
    from redis.asyncio import Redis as Client

    home_client = Client.from_url(_url(redis))  # the home is another node: its own client
    home, edge = RedisBroker(home_client), RedisBroker(redis)
    try:
        frames = await home.subscribe("room-1:out")
        events = await home.consume("room-1:in")
        await asyncio.wait_for(
            asyncio.gather(
                *(edge.publish("room-1:out", {"n": n}) for n in range(20)),
                *(edge.push("room-1:in", {"n": n}, key=f"k{n}") for n in range(20)),
            ),
            5,
        )
        assert [await asyncio.wait_for(frames.get(), 5) for _ in range(20)] == [{"n": n} for n in range(20)]
        assert [await asyncio.wait_for(events.get(), 5) for _ in range(20)] == [{"n": n} for n in range(20)]
        assert edge.batcher.commands >= 21  # the publishes in one PUBLISH or more, each push its own XADD
        assert edge.batcher.batches < 10
    finally:
        await home.aclose()
        await edge.aclose()
        await home_client.aclose()


def _url(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


async def test_what_is_published_to_a_channel_meanwhile_goes_in_one_publish(redis: Redis) -> None:
    """Frames published to one channel while the batch is not sent yet go as one PUBLISH (a JSON array):
    each subscriber on every node still gets each message, in publish order, its own copy."""
    from redis.asyncio import Redis as Client

    home_client = Client.from_url(_url(redis))
    home, edge = RedisBroker(home_client), RedisBroker(redis)
    try:
        first, second = await home.subscribe("room-1:out"), await home.subscribe("room-1:out")
        other = await home.subscribe("room-2:out")
        sent = [edge.publish_nowait("room-1:out", {"n": n}) for n in range(30)]
        sent.append(edge.publish_nowait("room-2:out", {"n": "other"}))
        await asyncio.wait_for(asyncio.gather(*sent), 5)
        assert edge.batcher.commands == 2  # one PUBLISH per channel
        for sub in (first, second):
            assert [await asyncio.wait_for(sub.get(), 5) for _ in range(30)] == [{"n": n} for n in range(30)]
        assert await asyncio.wait_for(other.get(), 5) == {"n": "other"}
        # Copies, not one shared dict: a subscriber that changes its message changes nobody else's.
        await edge.publish("room-1:out", {"n": 30})
        mine = await asyncio.wait_for(first.get(), 5)
        mine["n"] = -1
        assert await asyncio.wait_for(second.get(), 5) == {"n": 30}
    finally:
        await home.aclose()
        await edge.aclose()
        await home_client.aclose()


async def test_a_pipeline_redis_does_not_answer_in_time_fails_and_the_next_goes_through(redis: Redis) -> None:
    """One pipeline is on its way at a time: one that Redis holds (here CLIENT PAUSE) fails its callers
    after the batcher's bound, as redis-py's TimeoutError, instead of holding every room of the node for
    redis-py's socket timeout and retries; once Redis answers again, so does the next pipeline."""
    from redis.asyncio import Redis as Client
    from redis.exceptions import TimeoutError as RedisTimeoutError

    admin = Client.from_url(_url(redis))
    batcher = Batcher(redis, timeout=0.2)
    loop = asyncio.get_running_loop()
    try:
        await admin.execute_command("CLIENT", "PAUSE", "700", "ALL")
        started = loop.time()
        results = await asyncio.wait_for(
            asyncio.gather(
                *(batcher.execute(("RPUSH", "list", "x")) for _ in range(3)), return_exceptions=True
            ),
            5,
        )
        assert all(isinstance(result, RedisTimeoutError) for result in results), results
        assert loop.time() - started < 0.6  # the batcher's bound, not the pause, ended the wait
        for _ in range(50):  # bounded: the pause ends after 0.7 s
            try:
                assert await asyncio.wait_for(batcher.execute(("PING",)), 5) == [True]
                break
            except RedisTimeoutError:
                continue
        else:
            raise AssertionError("no pipeline went through after the pause")
    finally:
        await batcher.aclose()
        await admin.aclose()
