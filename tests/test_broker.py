"""The broker between nodes: one contract, run in-process and on a real redis-server, then Redis specifics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import structlog

from core.errors import Unavailable
from signaling import broker as broker_module
from signaling import redis_broker as redis_broker_module
from signaling import redis_queues as redis_queues_module
from signaling.broker import (
    RESUMED,
    Broker,
    BrokerClosed,
    MemoryBroker,
    Subscription,
    SubscriptionClosed,
    is_resumed,
)
from signaling.redis_broker import RedisBroker
from tests.harness.ports import free_port
from tests.harness.redis import RedisServer

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")
MakeBroker = Callable[..., Broker]
Logs = list[MutableMapping[str, Any]]


async def within(awaitable: Awaitable[T], seconds: float = 2.0) -> T:
    return await asyncio.wait_for(awaitable, seconds)


async def drain(sub: Subscription, count: int) -> list[dict[str, Any]]:
    return [await sub.get() for _ in range(count)]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Logs:
    """What the broker logs. Its module logger is swapped rather than using ``capture_logs``, which misses
    loggers that ``configure_logging`` (cache_logger_on_first_use) has already cached."""
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(None, processors=[capture], wrapper_class=structlog.BoundLogger)
    monkeypatch.setattr(broker_module, "log", logger)
    monkeypatch.setattr(redis_broker_module, "log", logger)
    monkeypatch.setattr(redis_queues_module, "log", logger)
    return capture.entries


def events(logs: Logs) -> list[str]:
    return [entry["event"] for entry in logs]


@contextlib.asynccontextmanager
async def clients_of(server: RedisServer) -> AsyncIterator[Callable[..., Redis]]:
    """Fresh clients on ``server`` (the first one flushes it); all closed on the way out."""
    from redis.asyncio import Redis

    clients: list[Redis] = []

    def connect(**options: Any) -> Redis:
        client = Redis.from_url(server.url, **options)
        clients.append(client)
        return client

    try:
        await connect().flushdb()
        yield connect
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
async def redis_clients(redis_server: RedisServer) -> AsyncIterator[Callable[..., Redis]]:
    async with clients_of(redis_server) as connect:
        yield connect


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Builds brokers of one kind (``make_broker(queue_size=8)``); every one is closed afterwards. Redis
    brokers are separate nodes: each has its own client and so its own pub/sub connection."""
    brokers: list[Broker] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "memory":

            def make(**options: Any) -> Broker:
                brokers.append(MemoryBroker(**options))
                return brokers[-1]

        else:
            connect = await stack.enter_async_context(clients_of(request.getfixturevalue("redis_server")))

            def make(**options: Any) -> Broker:
                brokers.append(RedisBroker(connect(), prefix="test:topic", **options))
                return brokers[-1]

        yield make
        for broker in brokers:
            await broker.aclose()


@pytest.fixture
def broker(make_broker: MakeBroker) -> Broker:
    return make_broker()


# --- the contract, on both implementations ---------------------------------------------------------------


async def test_a_published_message_reaches_the_subscriber(broker: Broker) -> None:
    sub = await broker.subscribe("room-1")
    await broker.publish("room-1", {"type": "memo", "text": "よろしくお願いします"})
    assert await within(sub.get()) == {"type": "memo", "text": "よろしくお願いします"}


async def test_every_subscriber_gets_its_own_copy(broker: Broker) -> None:
    first = await broker.subscribe("room-1")
    second = await broker.subscribe("room-1")
    await broker.publish("room-1", {"type": "page", "pages": (3, 4)})
    got_first, got_second = await within(first.get()), await within(second.get())
    assert got_first == got_second == {"type": "page", "pages": [3, 4]}  # JSON on both implementations
    got_first["pages"].append(5)
    assert got_second["pages"] == [3, 4]


async def test_each_publishers_order_is_kept_over_a_thousand_messages(broker: Broker) -> None:
    sub = await broker.subscribe("room-1")

    async def publisher(name: str) -> None:
        for n in range(500):
            await broker.publish("room-1", {"from": name, "n": n})

    received, *_ = await within(asyncio.gather(drain(sub, 1000), publisher("home"), publisher("edge")), 10)
    for name in ("home", "edge"):
        assert [m["n"] for m in received if m["from"] == name] == list(range(500))


async def test_topics_are_isolated(broker: Broker) -> None:
    room_a = await broker.subscribe("room-a")
    room_b = await broker.subscribe("room-b")
    await broker.publish("room-b", {"for": "b"})
    await broker.publish("room-a", {"for": "a"})
    assert await within(room_a.get()) == {"for": "a"}
    assert await within(room_b.get()) == {"for": "b"}


async def test_close_ends_iteration_and_the_subscription(broker: Broker) -> None:
    sub = await broker.subscribe("room-1")
    seen: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def read_all() -> None:
        async for message in sub:
            seen.append(message)
            arrived.set()

    reader = asyncio.create_task(read_all())
    await broker.publish("room-1", {"n": 1})
    await within(arrived.wait())
    await sub.close()
    await within(reader)  # iteration ended by itself
    assert seen == [{"n": 1}]
    assert sub.closed and not sub.dropped
    with pytest.raises(SubscriptionClosed):
        await within(sub.get())
    await sub.close()  # idempotent
    await broker.publish("room-1", {"n": 2})  # nobody listens any more: not an error

    async with await broker.subscribe("room-2") as scoped:
        await broker.publish("room-2", {"n": 3})
        assert await within(scoped.get()) == {"n": 3}
    assert scoped.closed


async def test_subscribing_again_right_after_closing_misses_nothing(broker: Broker) -> None:
    for n in range(20):
        sub = await broker.subscribe("room-1")
        await sub.close()
        sub = await broker.subscribe("room-1")
        await broker.publish("room-1", {"n": n})
        assert await within(sub.get()) == {"n": n}
        await sub.close()


async def test_a_subscriber_that_never_reads_is_dropped_without_blocking_anyone(
    make_broker: MakeBroker, logs: Logs
) -> None:
    broker = make_broker(queue_size=8)
    stalled = await broker.subscribe("room-a")  # a dead socket: never reads
    alive = await broker.subscribe("room-a")
    elsewhere = await broker.subscribe("room-b")
    for n in range(50):
        await within(broker.publish("room-a", {"n": n}))
        await within(broker.publish("room-b", {"n": n}))
        assert await within(alive.get()) == {"n": n}
        assert await within(elsewhere.get()) == {"n": n}
    assert stalled.dropped and stalled.closed
    assert [m async for m in stalled] == []  # its backlog is discarded: the owner re-syncs instead
    assert events(logs).count("broker.subscriber_dropped") == 1
    await stalled.close()  # closing a dropped subscription is harmless


async def test_only_json_objects_can_be_published(broker: Broker) -> None:
    with pytest.raises(TypeError):
        await broker.publish("room-1", {"at": datetime.now(UTC)})
    with pytest.raises(TypeError):
        await broker.publish("room-1", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await broker.publish("room-1", {"x": float("nan")})


async def test_aclose_ends_subscriptions_and_leaves_no_tasks(make_broker: MakeBroker) -> None:
    before = asyncio.all_tasks()
    broker = make_broker()
    subs = [await broker.subscribe(topic) for topic in ("room-1", "room-1", "room-2")]
    await broker.publish("room-1", {"n": 1})
    assert await within(subs[0].get()) == {"n": 1}
    waiting = asyncio.create_task(subs[2].get())
    await broker.aclose()
    with pytest.raises(SubscriptionClosed):
        await within(waiting)
    assert all(sub.closed and not sub.dropped for sub in subs)
    assert asyncio.all_tasks() == before
    with pytest.raises(BrokerClosed):
        await broker.publish("room-1", {"n": 2})
    with pytest.raises(BrokerClosed):
        await broker.subscribe("room-1")
    await broker.aclose()  # idempotent


def test_queue_size_must_make_sense() -> None:
    with pytest.raises(ValueError):
        MemoryBroker(queue_size=0)


# --- Redis specifics ---------------------------------------------------------------------------------------


@pytest.fixture
async def nodes(redis_clients: Callable[..., Redis]) -> AsyncIterator[Callable[..., RedisBroker]]:
    """Builds RedisBroker "nodes", each on its own client; all closed afterwards."""
    made: list[RedisBroker] = []

    def node(**options: Any) -> RedisBroker:
        made.append(RedisBroker(redis_clients(), prefix="test:topic", **options))
        return made[-1]

    yield node
    for broker in made:
        await broker.aclose()


async def numsub(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


@pytest.mark.redis
async def test_two_nodes_see_each_others_messages(nodes: Callable[..., RedisBroker]) -> None:
    home, edge = nodes(), nodes()
    on_home = await home.subscribe("room-1")
    on_edge = await edge.subscribe("room-1")  # and publish at once: subscribe returned only once active
    await home.publish("room-1", {"from": "home"})
    await edge.publish("room-1", {"from": "edge"})
    for sub in (on_home, on_edge):
        assert await within(drain(sub, 2)) == [{"from": "home"}, {"from": "edge"}]


@pytest.mark.redis
async def test_one_redis_subscription_per_topic_per_node(
    nodes: Callable[..., RedisBroker], redis_clients: Callable[..., Redis]
) -> None:
    node, admin = nodes(), redis_clients()
    channel = node.channel("room-1")
    first = await node.subscribe("room-1")
    second = await node.subscribe("room-1")
    assert await numsub(admin, channel) == 1
    await first.close()
    assert await numsub(admin, channel) == 1
    await node.publish("room-1", {"n": 1})
    assert await within(second.get()) == {"n": 1}
    await second.close()
    # A later SUBSCRIBE on the same connection is answered after the UNSUBSCRIBE was carried out.
    await node.subscribe("room-2")
    assert await numsub(admin, channel) == 0


@pytest.mark.redis
async def test_foreign_messages_on_our_channel_are_skipped(
    nodes: Callable[..., RedisBroker], redis_clients: Callable[..., Redis], logs: Logs
) -> None:
    node, raw = nodes(), redis_clients()
    sub = await node.subscribe("room-1")
    await raw.publish(node.channel("room-1"), b"\xff\xfe not json")
    await raw.publish(node.channel("room-1"), b"[1, 2, 3]")
    await node.publish("room-1", {"ok": True})
    assert await within(sub.get()) == {"ok": True}
    assert events(logs).count("broker.undecodable") == 2


async def wait_for_delivery(broker: RedisBroker, sub: Subscription, tries: int = 200) -> dict[str, Any]:
    """Publish until the subscription hears one: delivery resumes only once the reader has reconnected, and
    the subscription is told first that it may have missed messages (RESUMED)."""
    resumed = False
    for n in range(tries):
        try:
            await broker.publish("room-1", {"n": n})
            message = await asyncio.wait_for(sub.get(), 0.05)
            if is_resumed(message):
                assert not resumed, "told twice"
                resumed = True
                message = await asyncio.wait_for(sub.get(), 1.0)
            assert resumed, f"{message} came before RESUMED"
            return message
        except (Unavailable, TimeoutError):
            continue
    raise AssertionError("the broker did not deliver again")


@pytest.mark.redis
async def test_the_reader_reconnects_when_its_connection_is_killed(
    nodes: Callable[..., RedisBroker], redis_clients: Callable[..., Redis], logs: Logs
) -> None:
    node, admin = nodes(), redis_clients()
    sub = await node.subscribe("room-1")
    assert await admin.client_kill_filter(_type="pubsub") >= 1
    assert "n" in await within(wait_for_delivery(node, sub), 15)
    assert not sub.closed
    assert await numsub(admin, node.channel("room-1")) == 1
    assert events(logs) == ["broker.reconnecting", "broker.reconnected"]
    assert logs[0]["error"].startswith("ConnectionError")


async def test_an_unreachable_redis_is_unavailable_not_a_hang(logs: Logs) -> None:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    before = asyncio.all_tasks()
    nowhere = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    node = RedisBroker(nowhere, subscribe_timeout=0.2)
    try:
        with pytest.raises(Unavailable):
            await within(node.subscribe("room-1"))
        with pytest.raises(Unavailable):
            await within(node.publish("room-1", {"n": 1}))
        assert "broker.reconnecting" in events(logs)
    finally:
        await node.aclose()
        await nowhere.aclose()
    assert asyncio.all_tasks() == before


@pytest.mark.redis
async def test_the_reader_resubscribes_after_redis_restarts(logs: Logs) -> None:
    from redis.asyncio import Redis

    server = RedisServer()  # a private server: the session one stays up for the other tests
    server.start()
    redis = Redis.from_url(server.url)
    node = RedisBroker(redis)
    try:
        sub = await node.subscribe("room-1")
        other = await node.subscribe("room-2")
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        assert "n" in await within(wait_for_delivery(node, sub), 15)
        await node.publish("room-2", {"still": "here"})
        assert await within(other.get()) == RESUMED  # it may have missed something: it re-syncs
        assert await within(other.get()) == {"still": "here"}
        assert "broker.reconnecting" in events(logs)
        assert events(logs)[-1] == "broker.reconnected"
    finally:
        await node.aclose()
        await redis.aclose()
        server.stop()


# --- queues: the reliable kind, on both implementations ---------------------------------------------------


async def test_a_pushed_message_reaches_the_reader_once_per_key(broker: Broker) -> None:
    reader = await broker.consume("room-1:in")  # pushed right after: never missed
    await broker.push("room-1:in", {"type": "end"}, key="k1")
    await broker.push("room-1:in", {"type": "end"}, key="k1")  # a pusher's retry: the same key
    await broker.push("room-1:in", {"type": "doc.page", "page": 2}, key="k2")
    assert await within(drain(reader, 2)) == [{"type": "end"}, {"type": "doc.page", "page": 2}]
    await broker.push("room-1:in", {"type": "ping"}, key="k3")
    assert await within(reader.get()) == {"type": "ping"}  # the copy of k1 never came
    assert not reader.dropped


async def test_each_pushers_order_is_kept_and_a_slow_reader_is_never_dropped(make_broker: MakeBroker) -> None:
    broker = make_broker(queue_size=8)
    reader = await broker.consume("room-1:in")

    async def pusher(name: str) -> None:
        for n in range(300):
            await broker.push("room-1:in", {"from": name, "n": n}, key=f"{name}-{n}")

    received, *_ = await within(asyncio.gather(drain(reader, 600), pusher("a"), pusher("b")), 20)
    for name in ("a", "b"):
        assert [m["n"] for m in received if m["from"] == name] == list(range(300))
    assert not reader.dropped and not reader.closed


async def test_a_full_queue_does_not_hold_up_another(make_broker: MakeBroker) -> None:
    broker = make_broker(queue_size=2)
    stalled = await broker.consume("room-a:in")  # a home that is busy: reads nothing for now
    other = await broker.consume("room-b:in")
    for n in range(2):
        await within(broker.push("room-a:in", {"n": n}, key=f"a{n}"))
    await within(broker.push("room-b:in", {"n": 0}, key="b0"))
    assert await within(other.get()) == {"n": 0}
    assert await within(drain(stalled, 2)) == [{"n": 0}, {"n": 1}]


async def test_readers_end_with_the_broker_and_queues_refuse_afterwards(make_broker: MakeBroker) -> None:
    before = asyncio.all_tasks()
    broker = make_broker()
    reader = await broker.consume("room-1:in")
    await broker.push("room-1:in", {"n": 1}, key="1")
    assert await within(reader.get()) == {"n": 1}
    await broker.discard("room-1:in")
    await broker.aclose()
    assert reader.closed and not reader.dropped
    assert asyncio.all_tasks() == before
    with pytest.raises(BrokerClosed):
        await broker.push("room-1:in", {"n": 2}, key="2")
    with pytest.raises(BrokerClosed):
        await broker.consume("room-1:in")


@pytest.mark.redis
async def test_a_queue_loses_nothing_when_its_connections_are_killed(
    nodes: Callable[..., RedisBroker], redis_clients: Callable[..., Redis], logs: Logs
) -> None:
    home, edge, admin = nodes(), nodes(), redis_clients()
    reader = await home.consume("room-1:in")
    await edge.push("room-1:in", {"n": -1}, key="warm-up")  # the reading task is blocked in XREAD now
    assert await within(reader.get()) == {"n": -1}
    # Every connection but the admin's goes: the reader's blocking XREAD and the pusher's pool alike. Pub/sub
    # would lose what is published until the reader has reconnected; a queue must not.
    assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
    for n in range(20):
        await within(edge.push("room-1:in", {"n": n}, key=f"k{n}"), 10)
    assert await within(drain(reader, 20), 15) == [{"n": n} for n in range(20)]
    assert "broker.queues_reconnecting" in events(logs)


@pytest.mark.redis
async def test_a_push_while_redis_restarts_arrives_once_it_is_back() -> None:
    from redis.asyncio import Redis

    server = RedisServer()  # a private server: the session one stays up for the other tests
    server.start()
    home_client, edge_client = Redis.from_url(server.url), Redis.from_url(server.url)
    home, edge = RedisBroker(home_client), RedisBroker(edge_client)
    try:
        reader = await home.consume("room-1:in")
        await asyncio.to_thread(server.stop)
        pushing = asyncio.create_task(edge.push("room-1:in", {"type": "end"}, key="end-1"))
        await asyncio.to_thread(server.start)
        await within(pushing, 10)  # retried until Redis answered, then acknowledged
        assert await within(reader.get(), 15) == {"type": "end"}
    finally:
        await home.aclose()
        await edge.aclose()
        await home_client.aclose()
        await edge_client.aclose()
        server.stop()


async def test_a_push_to_an_unreachable_redis_is_unavailable_in_bounded_time() -> None:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    nowhere = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    node = RedisBroker(nowhere)
    node.queues.push_timeout = 0.3
    try:
        with pytest.raises(Unavailable):
            await within(node.push("room-1:in", {"type": "end"}, key="k"))
    finally:
        await node.aclose()
        await nowhere.aclose()
