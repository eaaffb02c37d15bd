"""The broker between nodes: room events travel as small JSON-able dicts over named topics.

A room lives on one "home" node while its participants' WebSockets may be held by any node. Whoever has
something to say about a room publishes it to the room's topic; every node holding a socket for that room
subscribes to the topic and forwards what arrives. :class:`MemoryBroker` serves a single process;
:class:`RedisBroker` carries topics between nodes over Redis pub/sub.

Guarantees, the same for both implementations:

- **At most once.** A message reaches each subscription that was active when it was published at most once.
  Nothing is persisted or replayed: a node that is down, reconnecting to Redis, or whose subscriber fell too
  far behind misses messages. Callers therefore treat messages as hints and re-sync room state from its
  owner on (re)connect, and whenever a subscription ends without them having closed it (``dropped``).
- **Per-publisher order.** Messages one publisher publishes to a topic (one ``await publish`` after the
  other) arrive in that order at every subscriber. There is no order between different publishers.
- **Active on return.** :meth:`Broker.subscribe` returns only once the subscription is active, so a message
  published anywhere after it returned is not missed (barring the failures above).
- **Isolation.** Each subscription has its own bounded queue. Publishing never waits for subscribers: a
  subscriber whose queue is full is dropped (closed, logged as ``broker.subscriber_dropped``) rather than
  blocking the publisher, delaying other subscribers or topics, or growing memory without bound.
- **Copies of JSON.** A message must be a dict that ``json`` can encode; each subscriber receives its own
  decoded copy (so a tuple arrives as a list, on both implementations alike).

Only the publisher's own mistakes (a message that is not JSON-able: :class:`TypeError`) or an unreachable
Redis (:class:`~core.errors.Unavailable`) raise from :meth:`Broker.publish`; nothing a subscriber does can.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import structlog

from core.errors import Unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = structlog.get_logger("tsunagu.broker")

DEFAULT_QUEUE_SIZE = 1000
# Reconnection to Redis waits this long after the first failure, doubling up to the maximum.
RECONNECT_FIRST_DELAY = 0.05
RECONNECT_MAX_DELAY = 2.0

Message = dict[str, Any]


class SubscriptionClosed(Unavailable):
    """Raised by :meth:`Subscription.get` once the subscription is closed, dropped or its broker closed."""

    code = "subscription_closed"


class BrokerClosed(Unavailable):
    """Raised by :meth:`Broker.publish` and :meth:`Broker.subscribe` after :meth:`Broker.aclose`."""

    code = "broker_closed"


def encode(message: Message) -> str:
    """The wire form of a message; :class:`TypeError` when it is not a JSON-able dict."""
    if not isinstance(message, dict):
        raise TypeError(f"a broker message is a dict, not {type(message).__name__}")
    try:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a broker message must be JSON-able: {exc}") from exc


def decode(data: str | bytes) -> Message:
    """The message from its wire form; :class:`ValueError` when it is not a JSON object."""
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError(f"a broker message is a JSON object, not {type(message).__name__}")
    return message


class Subscription(abc.ABC):
    """Messages published to one topic after subscribe() returned, in publish order per publisher.

    Read with ``await sub.get()`` or ``async for message in sub``; close with ``await sub.close()`` or use it
    as ``async with await broker.subscribe(topic) as sub:``. Once closed — by its owner, by being dropped for
    falling behind, or by the broker closing — ``get`` raises :class:`SubscriptionClosed` and iteration
    ends.
    """

    topic: str

    @abc.abstractmethod
    async def get(self) -> Message:
        """Wait for the next message; :class:`SubscriptionClosed` once closed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop receiving; idempotent. Messages not yet read are discarded."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once closed for any reason."""

    @property
    @abc.abstractmethod
    def dropped(self) -> bool:
        """True when the broker closed this subscription because it fell behind; the caller re-syncs."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Broker(abc.ABC):
    """Publish room events to topics; subscribe to the topics of rooms this node holds sockets for."""

    @abc.abstractmethod
    async def publish(self, topic: str, message: Message) -> None:
        """Deliver ``message`` to every subscription of ``topic`` on every node; never waits for them."""

    @abc.abstractmethod
    async def subscribe(self, topic: str) -> Subscription:
        """A new subscription to ``topic``, returned once active: a publish right after it is never missed."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every subscription and release the broker's resources; idempotent."""


class QueueSubscription(Subscription):
    """A subscription fed through a bounded queue: by both brokers, and by the room hub for local sockets."""

    def __init__(
        self, topic: str, queue_size: int, release: Callable[[QueueSubscription], Awaitable[None]]
    ) -> None:
        self.topic = topic
        # ``None`` is the end-of-stream marker, put once the queue has been emptied by end().
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=queue_size)
        self._release = release
        self._closed = False
        self._dropped = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped(self) -> bool:
        return self._dropped

    def offer(self, message: Message) -> bool:
        """Queue ``message`` without waiting; False when the queue is full (the broker then drops us)."""
        if self._closed:
            return True
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, *, dropped: bool = False) -> bool:
        """Mark closed, discard unread messages and wake readers; False when already closed."""
        if self._closed:
            return False
        self._closed = True
        self._dropped = dropped
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        return True

    async def get(self) -> Message:
        message = await self._queue.get()
        if message is None:
            self._queue.put_nowait(None)  # for any other reader waiting on the same subscription
            raise SubscriptionClosed()
        return message

    async def close(self) -> None:
        if self.end():
            await self._release(self)


def _check_queue_size(queue_size: int) -> int:
    if queue_size < 1:
        raise ValueError("queue_size must be >= 1")
    return queue_size


class MemoryBroker(Broker):
    """Topics within this process; right for a single node (and for tests)."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = _check_queue_size(queue_size)
        self._topics: dict[str, set[QueueSubscription]] = {}
        self._closed = False

    async def publish(self, topic: str, message: Message) -> None:
        payload = encode(message)
        if self._closed:
            raise BrokerClosed()
        for sub in list(self._topics.get(topic, ())):
            if not sub.offer(decode(payload)):
                sub.end(dropped=True)
                self._forget(sub)
                log.warning("broker.subscriber_dropped", topic=topic, queue_size=self.queue_size)

    async def subscribe(self, topic: str) -> Subscription:
        if self._closed:
            raise BrokerClosed()
        sub = QueueSubscription(topic, self.queue_size, self._release)
        self._topics.setdefault(topic, set()).add(sub)
        return sub

    def _forget(self, sub: QueueSubscription) -> None:
        subs = self._topics.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._topics[sub.topic]

    async def _release(self, sub: QueueSubscription) -> None:
        self._forget(sub)

    async def aclose(self) -> None:
        self._closed = True
        topics, self._topics = self._topics, {}
        for subs in topics.values():
            for sub in subs:
                sub.end()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBroker(Broker):
    """Topics shared by every node through Redis pub/sub (channel ``{prefix}:{topic}``, JSON payloads).

    Each broker holds ONE pub/sub connection, read by one task that hands messages to the local
    subscriptions' queues. A channel is SUBSCRIBEd once per node however many local subscriptions it has,
    and UNSUBSCRIBEd when the last of them closes. When the connection fails (Redis restarted, say) the
    reader logs ``broker.reconnecting`` and reconnects with backoff (``RECONNECT_FIRST_DELAY`` doubling up to
    ``RECONNECT_MAX_DELAY``), subscribing again to every channel that still has local subscribers; what was
    published meanwhile is lost. A message on our channel that is not a JSON object is logged
    (``broker.undecodable``) and skipped. :meth:`subscribe` raises :class:`~core.errors.Unavailable` when
    Redis does not confirm the subscription within ``subscribe_timeout`` seconds.

    The Redis client is the caller's (:meth:`aclose` does not close it); give it ``decode_responses=False``
    (the default), or redis-py itself fails on a foreign non-UTF-8 payload and the reader has to reconnect.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str = "tsunagu:topic",
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        subscribe_timeout: float = 5.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.queue_size = _check_queue_size(queue_size)
        self.subscribe_timeout = subscribe_timeout
        self._subscribers: dict[str, set[QueueSubscription]] = {}  # channel -> local subscriptions
        self._active: set[str] = set()  # channels whose SUBSCRIBE is confirmed on the current connection
        # channel -> one entry per SUBSCRIBE sent and not yet confirmed, in send order: the subscribe()
        # calls waiting for it. Replies come back in command order, so each confirmation pops the oldest.
        self._pending: dict[str, deque[list[asyncio.Future[None]]]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # Serialises (un)subscribing with (re)connecting; never held while reading or awaiting Redis replies.
        self._lock = asyncio.Lock()
        self._closed = False

    def channel(self, topic: str) -> str:
        """The Redis channel that carries ``topic``."""
        return f"{self.prefix}:{topic}"

    async def publish(self, topic: str, message: Message) -> None:
        from redis.exceptions import RedisError

        payload = encode(message)
        if self._closed:
            raise BrokerClosed()
        try:
            await self.redis.publish(self.channel(topic), payload)
        except RedisError as exc:
            raise Unavailable() from exc

    async def subscribe(self, topic: str) -> Subscription:
        channel = self.channel(topic)
        sub = QueueSubscription(topic, self.queue_size, self._release)
        waiter: asyncio.Future[None] | None = None
        async with self._lock:
            if self._closed:
                raise BrokerClosed()
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name=f"broker-reader:{self.prefix}")
            subs = self._subscribers.setdefault(channel, set())
            subs.add(sub)
            if channel not in self._active:
                waiter = asyncio.get_running_loop().create_future()
                groups = self._pending.setdefault(channel, deque())
                if len(subs) == 1 or not groups:
                    groups.append([waiter])
                    await self._send("SUBSCRIBE", channel)
                else:  # a SUBSCRIBE for this channel is already on its way: wait for its confirmation
                    groups[-1].append(waiter)
        if waiter is not None:
            try:
                await asyncio.wait_for(waiter, self.subscribe_timeout)
            except BaseException as exc:
                await sub.close()
                if isinstance(exc, TimeoutError):
                    raise Unavailable() from exc
                raise
        return sub

    async def _send(self, command: str, channel: str) -> None:
        """Send (UN)SUBSCRIBE on the shared connection, if there is one; the lock is held."""
        if self._pubsub is None:
            return  # reconnecting: the reader subscribes to every channel with subscribers once connected
        try:
            if command == "SUBSCRIBE":
                await self._pubsub.subscribe(channel)
            else:
                await self._pubsub.unsubscribe(channel)
        except Exception as exc:  # the reader sees the broken connection too and reconnects
            log.warning("broker.command_failed", command=command, channel=channel, error=_describe(exc))

    async def _release(self, sub: QueueSubscription) -> None:
        channel = self.channel(sub.topic)
        async with self._lock:
            subs = self._subscribers.get(channel)
            if subs is None or sub not in subs:
                return
            subs.discard(sub)
            if not subs:
                del self._subscribers[channel]
                self._active.discard(channel)
                await self._send("UNSUBSCRIBE", channel)

    async def _read(self) -> None:
        """The reader task: keep one connection subscribed, dispatch what arrives, reconnect on failure."""
        delay = RECONNECT_FIRST_DELAY
        failed = False
        while True:
            try:
                pubsub = await self._connect()
                if failed:
                    log.info("broker.reconnected", channels=len(self._subscribers))
                    failed = False
                delay = RECONNECT_FIRST_DELAY
                while True:
                    response = await pubsub.get_message(timeout=None)
                    if response is not None:
                        await self._handle(response)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = True
                log.warning("broker.reconnecting", error=_describe(exc), retry_in=delay)
                await self._disconnect()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _connect(self) -> PubSub:
        """A fresh pub/sub connection subscribed to every channel that has local subscribers."""
        pubsub = self.redis.pubsub()
        try:  # connect before taking the lock, so subscribe() is not held up while Redis is unreachable
            await pubsub.connect()
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        async with self._lock:
            self._pubsub = pubsub
            pending, self._pending = self._pending, {}
            for channel in self._subscribers:
                # Whatever was sent on the old connection is lost: one SUBSCRIBE now answers all waiters.
                self._pending[channel] = deque([[w for group in pending.pop(channel, ()) for w in group]])
            for groups in pending.values():  # channels nobody listens to any more
                for group in groups:
                    for waiter in group:
                        if not waiter.done():
                            waiter.set_result(None)
            if self._subscribers:
                await pubsub.subscribe(*self._subscribers)
            return pubsub

    async def _disconnect(self) -> None:
        async with self._lock:
            self._active.clear()
            await self._close_pubsub()

    async def _close_pubsub(self) -> None:
        """Close the shared connection; the lock is held so nobody sends on it meanwhile."""
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    async def _handle(self, response: dict[str, Any]) -> None:
        kind = _text(response["type"])
        if kind == "subscribe":
            channel = _text(response["channel"])
            if not self._confirmed(channel) and channel not in self._subscribers:
                # redis-py re-subscribed after reconnecting by itself to a channel nobody here wants any more
                async with self._lock:
                    if channel not in self._subscribers and channel not in self._pending:
                        await self._send("UNSUBSCRIBE", channel)
        elif kind == "message":
            await self._dispatch(_text(response["channel"]), response["data"])

    def _confirmed(self, channel: str) -> bool:
        """Note a SUBSCRIBE reply and wake whoever waits for it; False when none was expected."""
        groups = self._pending.get(channel)
        expected = bool(groups)
        if groups:
            for waiter in groups.popleft():
                if not waiter.done():
                    waiter.set_result(None)
        if not groups:
            self._pending.pop(channel, None)
            # Active only while nothing is in flight and someone listens (else an UNSUBSCRIBE follows it).
            if channel in self._subscribers:
                self._active.add(channel)
        return expected

    async def _dispatch(self, channel: str, data: str | bytes) -> None:
        subs = self._subscribers.get(channel)
        if not subs:
            return
        try:
            message = decode(data)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("broker.undecodable", channel=channel, error=_describe(exc), size=len(data))
            return
        dropped = []
        for i, sub in enumerate(list(subs)):
            if not sub.offer(message if i == 0 else decode(data)):
                sub.end(dropped=True)
                dropped.append(sub)
                log.warning("broker.subscriber_dropped", topic=sub.topic, queue_size=self.queue_size)
        for sub in dropped:
            await self._release(sub)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait({reader})  # unlike ``await reader``, a cancellation of aclose propagates
        async with self._lock:
            subscribers, self._subscribers = self._subscribers, {}
            pending, self._pending = self._pending, {}
            self._active.clear()
            await self._close_pubsub()
        for subs in subscribers.values():
            for sub in subs:
                sub.end()
        for groups in pending.values():
            for group in groups:
                for waiter in group:
                    if not waiter.done():
                        waiter.set_exception(BrokerClosed())
