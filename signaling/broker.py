"""The broker between nodes: room events travel as small JSON-able dicts over named topics.

A room lives on one "home" node while its participants' WebSockets may be held by any node. Whoever has
something to say about a room publishes it to the room's topic; every node holding a socket for that room
subscribes to the topic and forwards what arrives. :class:`MemoryBroker` serves a single process;
:class:`~signaling.redis_broker.RedisBroker` carries topics between nodes over Redis pub/sub.

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
import json
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import structlog

from core.errors import Unavailable

log = structlog.get_logger("tsunagu.broker")

DEFAULT_QUEUE_SIZE = 1000

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

    def finish(self) -> None:
        """End the stream after what is already queued has been read (the last frames, a close code)."""
        if self._closed:
            return
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self.end()  # too far behind to wait for: end now
            return
        self._closed = True

    async def get(self) -> Message:
        message = await self._queue.get()
        if message is None:
            self._queue.put_nowait(None)  # for any other reader waiting on the same subscription
            raise SubscriptionClosed()
        return message

    async def close(self) -> None:
        if self.end():
            await self._release(self)


def check_queue_size(queue_size: int) -> int:
    if queue_size < 1:
        raise ValueError("queue_size must be >= 1")
    return queue_size


class MemoryBroker(Broker):
    """Topics within this process; right for a single node (and for tests)."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = check_queue_size(queue_size)
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
