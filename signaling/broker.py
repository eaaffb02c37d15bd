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
- **Told of a gap.** A broker that lost messages for a subscription while it reconnected (Redis restarted,
  a connection killed) hands that subscription one :data:`RESUMED` message (``is_resumed``) as soon as it is
  active again, in line with the messages after it: the caller re-syncs then, without waiting for a close.
  Every reader of a subscription must expect it (the in-process broker never sends it).
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

**Queues** are the reliable kind, for what must not be lost: commands to a room's home node (終了, page
turns, camera requests, connects). :meth:`Broker.push` appends a message with a ``key`` to a topic's queue;
:meth:`Broker.consume` reads it. Guarantees, the same for both implementations:

- **Exactly once per key.** Every message pushed after :meth:`Broker.consume` returned reaches that reader,
  once per ``key``, however the connection in between fails: a reader that loses its connection (Redis
  restarted, a connection killed) resumes where it stopped, and a pusher whose push may or may not have
  arrived pushes again with the same key (:meth:`Broker.push` does so itself until ``push_timeout``); the
  reader drops the second copy.
- **Per-pusher order**, as for topics.
- **Acknowledged push.** :meth:`Broker.push` returns once the message is stored (Redis: in a stream) and
  raises :class:`~core.errors.Unavailable` only when it could not be stored within its time limit; the
  caller then knows the message is lost and says so.
- **Never dropped for falling behind.** A reader whose queue is full is simply not fed until it has room
  (the messages wait in Redis, or the in-process pusher waits), and other queues are not held up.
- Messages pushed while no reader is open are kept for a while (Redis: the newest 10,000 per queue, for a
  day) but a reader opened later starts from its own start: a room's home reads what is sent to it while it
  runs. :meth:`Broker.discard` drops a queue nobody will read again (the room ended).
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
KEYS_REMEMBERED = 10_000  # a queue's reader drops copies of these many most recent keys

Message = dict[str, Any]

RESUMED: Message = {"resumed": True}
"""What a subscription receives when messages may have been lost before it (see "Told of a gap")."""


def is_resumed(message: Message) -> bool:
    """True for the :data:`RESUMED` marker."""
    return message.get("resumed") is True and len(message) == 1


class SubscriptionClosed(Unavailable):
    """Raised by :meth:`Subscription.get` once the subscription is closed, dropped or its broker closed."""

    code = "subscription_closed"


class BrokerClosed(Unavailable):
    """Raised by :meth:`Broker.publish` and :meth:`Broker.subscribe` after :meth:`Broker.aclose`."""

    code = "broker_closed"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)  # made once


def encode(message: Message) -> str:
    """The wire form of a message; :class:`TypeError` when it is not a JSON-able dict."""
    if not isinstance(message, dict):
        raise TypeError(f"a broker message is a dict, not {type(message).__name__}")
    try:
        return _ENCODER.encode(message)
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
    """Publish room events to topics; subscribe to the topics of rooms this node holds sockets for; push
    commands to a room's home through a queue that loses nothing (see the module docstring)."""

    @abc.abstractmethod
    async def publish(self, topic: str, message: Message) -> None:
        """Deliver ``message`` to every subscription of ``topic`` on every node; never waits for them."""

    @abc.abstractmethod
    def publish_nowait(self, topic: str, message: Message) -> asyncio.Future[None]:
        """:meth:`publish` without waiting for it, for a caller that cannot wait (the hub's fast path): in
        order with this broker's publishes called before and after it (per-publisher order); the future
        holds the outcome, what :meth:`publish` would have raised. Raises only the publisher's own mistakes
        (:class:`TypeError`) and :class:`BrokerClosed` at once."""

    @abc.abstractmethod
    async def subscribe(self, topic: str) -> Subscription:
        """A new subscription to ``topic``, returned once active: a publish right after it is never missed."""

    @abc.abstractmethod
    async def push(self, topic: str, message: Message, key: str) -> None:
        """Append ``message`` to ``topic``'s queue, once stored; ``key`` names it for de-duplication."""

    @abc.abstractmethod
    async def consume(self, topic: str) -> Subscription:
        """A reader of ``topic``'s queue, returned once every later push is sure to reach it."""

    @abc.abstractmethod
    async def discard(self, topic: str) -> None:
        """Forget ``topic``'s queue (nobody will read it again); idempotent."""

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
        # Set by the socket the messages are for: takes one at once when nothing is queued before it (True),
        # else it is queued (see Connection.send_directly).
        self.direct: Callable[[Message], bool] | None = None

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
        if self.direct is not None and self._queue.empty() and self.direct(message):
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


class KeyedSubscription(QueueSubscription):
    """A queue's reader: hands each key once (the newest :data:`KEYS_REMEMBERED` keys are remembered)."""

    def __init__(
        self, topic: str, queue_size: int, release: Callable[[QueueSubscription], Awaitable[None]]
    ) -> None:
        super().__init__(topic, queue_size, release)
        self._keys: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is seen (and remember it); False for a copy of a pushed message."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > KEYS_REMEMBERED:
            del self._keys[next(iter(self._keys))]
        return True

    @property
    def full(self) -> bool:
        return self._queue.full()

    async def put(self, message: Message) -> None:
        """Queue ``message``, waiting while the queue is full; dropped once the reader is closed."""
        if not self._closed:
            await self._queue.put(message)


def check_queue_size(queue_size: int) -> int:
    if queue_size < 1:
        raise ValueError("queue_size must be >= 1")
    return queue_size


class MemoryBroker(Broker):
    """Topics within this process; right for a single node (and for tests)."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = check_queue_size(queue_size)
        self._topics: dict[str, set[QueueSubscription]] = {}
        self._readers: dict[str, set[KeyedSubscription]] = {}  # queues: topic -> readers
        self._closed = False

    async def publish(self, topic: str, message: Message) -> None:
        self._publish(topic, message)

    def publish_nowait(self, topic: str, message: Message) -> asyncio.Future[None]:
        self._publish(topic, message)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _publish(self, topic: str, message: Message) -> None:
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

    async def push(self, topic: str, message: Message, key: str) -> None:
        payload = encode(message)
        if self._closed:
            raise BrokerClosed()
        for reader in list(self._readers.get(topic, ())):
            if reader.first_time(key):
                await reader.put(decode(payload))  # a reader that is behind makes the pusher wait

    async def consume(self, topic: str) -> Subscription:
        if self._closed:
            raise BrokerClosed()
        reader = KeyedSubscription(topic, self.queue_size, self._release_reader)
        self._readers.setdefault(topic, set()).add(reader)
        return reader

    async def discard(self, topic: str) -> None:
        pass  # nothing is kept for a queue without readers

    def _forget(self, sub: QueueSubscription) -> None:
        subs = self._topics.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._topics[sub.topic]

    async def _release(self, sub: QueueSubscription) -> None:
        self._forget(sub)

    async def _release_reader(self, sub: QueueSubscription) -> None:
        readers = self._readers.get(sub.topic)
        if readers is not None and isinstance(sub, KeyedSubscription):
            readers.discard(sub)
            if not readers:
                del self._readers[sub.topic]

    async def aclose(self) -> None:
        self._closed = True
        topics, self._topics = self._topics, {}
        readers, self._readers = self._readers, {}
        for subs in topics.values():
            for sub in subs:
                sub.end()
        for group in readers.values():
            for reader in group:
                reader.end()
