"""The broker over Redis pub/sub, for rooms whose participants are on several nodes (``REDIS_URL``).

The contract (topics: at most once, per-publisher order, isolation, JSON copies; queues: exactly once per
key) is :mod:`signaling.broker`'s. Queues are Redis Streams (:mod:`signaling.redis_queues`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import TYPE_CHECKING, Any

import structlog

from core.errors import Unavailable
from signaling.broker import (
    DEFAULT_QUEUE_SIZE,
    RESUMED,
    Broker,
    BrokerClosed,
    Message,
    QueueSubscription,
    Subscription,
    check_queue_size,
    decode,
    encode,
)
from signaling.redis_batch import Batcher
from signaling.redis_queues import RedisQueues

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = structlog.get_logger("tsunagu.broker")

# Reconnection to Redis waits this long after the first failure, doubling up to the maximum.
RECONNECT_FIRST_DELAY = 0.05
RECONNECT_MAX_DELAY = 2.0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Bundle:
    """Messages published to one channel while the batcher's next pipeline was not sent yet: one PUBLISH."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.sent: asyncio.Future[list[Any]]

    def payload(self) -> str:
        """One message as it is; more as a JSON array of them, in publish order."""
        if len(self.payloads) == 1:
            return self.payloads[0]
        return f"[{','.join(self.payloads)}]"


def _settle(outcome: asyncio.Future[None], sent: asyncio.Future[list[Any]]) -> None:
    """A publish's outcome from its batch's: Redis's errors are :class:`~core.errors.Unavailable`."""
    from redis.exceptions import RedisError

    if outcome.done():
        return
    error = BrokerClosed() if sent.cancelled() else sent.exception()
    if error is None:
        outcome.set_result(None)
    elif isinstance(error, RedisError):
        unavailable = Unavailable()
        unavailable.__cause__ = error
        outcome.set_exception(unavailable)
    else:
        outcome.set_exception(error)


class RedisBroker(Broker):
    """Topics shared by every node through Redis pub/sub (channel ``{prefix}:{topic}``, JSON payloads).

    Each broker holds ONE pub/sub connection, read by one task that hands messages to the local
    subscriptions' queues. A channel is SUBSCRIBEd once per node however many local subscriptions it has,
    and UNSUBSCRIBEd when the last of them closes. When the connection fails (Redis restarted, say) the
    reader logs ``broker.reconnecting`` and reconnects with backoff (``RECONNECT_FIRST_DELAY`` doubling up to
    ``RECONNECT_MAX_DELAY``), subscribing again to every channel that still has local subscribers; what was
    published meanwhile is lost, and each of those subscriptions is handed :data:`~signaling.broker.RESUMED`
    once its channel's SUBSCRIBE is confirmed again, so that its reader re-syncs. A message on our channel
    that is not a JSON object, or a JSON array of them, is logged (``broker.undecodable``) and skipped.

    Publishes go through the node's :class:`~signaling.redis_batch.Batcher` with its queues' pushes; what is
    published to one channel until the batcher's next pipeline is sent goes as ONE ``PUBLISH``, a JSON array
    of the messages in publish order, which the reader hands over one by one. :meth:`subscribe` raises
    :class:`~core.errors.Unavailable` when Redis does not confirm the subscription within
    ``subscribe_timeout`` seconds.

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
        self.queue_size = check_queue_size(queue_size)
        self.subscribe_timeout = subscribe_timeout
        self._subscribers: dict[str, set[QueueSubscription]] = {}  # channel -> local subscriptions
        self._active: set[str] = set()  # channels whose SUBSCRIBE is confirmed on the current connection
        # Channels subscribed again after a lost connection: their subscriptions get RESUMED on confirmation.
        self._resuming: set[str] = set()
        # channel -> one entry per SUBSCRIBE sent and not yet confirmed, in send order: the subscribe()
        # calls waiting for it. Replies come back in command order, so each confirmation pops the oldest.
        self._pending: dict[str, deque[list[asyncio.Future[None]]]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # Serialises (un)subscribing with (re)connecting; never held while reading or awaiting Redis replies.
        self._lock = asyncio.Lock()
        self._closed = False
        # Publishes and pushes from every room on this node share one pipeline (signaling/redis_batch.py).
        self.batcher = Batcher(redis)
        self._bundles: dict[str, _Bundle] = {}  # channel -> what is published to it until the batch goes
        self.queues = RedisQueues(redis, f"{prefix}:queue", self.queue_size, batcher=self.batcher)

    def channel(self, topic: str) -> str:
        """The Redis channel that carries ``topic``."""
        return f"{self.prefix}:{topic}"

    async def publish(self, topic: str, message: Message) -> None:
        await self.publish_nowait(topic, message)

    def publish_nowait(self, topic: str, message: Message) -> asyncio.Future[None]:
        payload = encode(message)
        if self._closed:
            raise BrokerClosed()
        # With whatever else this node sends meanwhile, in one pipeline (signaling/redis_batch.py); what is
        # published to the same channel until that pipeline is sent goes in one PUBLISH, a JSON array.
        channel = self.channel(topic)
        bundle = self._bundles.get(channel)
        if bundle is None:
            bundle = _Bundle()

            def command() -> tuple[str, str, str]:
                if self._bundles.get(channel) is bundle:
                    del self._bundles[channel]  # sent now: later publishes go in the next batch
                return ("PUBLISH", channel, bundle.payload())

            bundle.sent = self.batcher.submit(command)  # first: a bundle is only kept once it is queued
            self._bundles[channel] = bundle
        bundle.payloads.append(payload)
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bundle.sent.add_done_callback(lambda sent: _settle(outcome, sent))
        return outcome

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
                self._resuming.discard(channel)
                await self._send("UNSUBSCRIBE", channel)

    async def _read(self) -> None:
        """The reader task: keep one connection subscribed, dispatch what arrives, reconnect on failure."""
        delay = RECONNECT_FIRST_DELAY
        failed = False
        # See RedisQueues._read: a cancellation may come back as a TimeoutError; the flag ends the loop too.
        while not self._closed:
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
                if self._closed:
                    return
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
            self._resuming |= self._active  # whatever these carry until subscribed again is lost
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
            expected = self._confirmed(channel)
            if channel in self._resuming and channel in self._active:
                self._resuming.discard(channel)
                await self._offer(channel, RESUMED)
            if not expected and channel not in self._subscribers:
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
            value = json.loads(data)
            if isinstance(value, list):  # a bundle: several messages published meanwhile, in order
                if not all(isinstance(message, dict) for message in value):
                    raise ValueError("a bundle of broker messages holds JSON objects only")
            elif not isinstance(value, dict):
                raise ValueError(f"a broker message is a JSON object, not {type(value).__name__}")
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("broker.undecodable", channel=channel, error=_describe(exc), size=len(data))
            return
        if isinstance(value, dict):
            await self._offer(channel, value, data)
            return
        for message in value:
            await self._offer(channel, message)

    async def _offer(self, channel: str, message: Message, data: str | bytes | None = None) -> None:
        """Hand ``message`` to the channel's subscriptions, each its own copy; drop those that are full."""
        dropped = []
        for i, sub in enumerate(list(self._subscribers.get(channel, ()))):
            if not sub.offer(message if i == 0 else decode(data or encode(message))):
                sub.end(dropped=True)
                dropped.append(sub)
                log.warning("broker.subscriber_dropped", topic=sub.topic, queue_size=self.queue_size)
        for sub in dropped:
            await self._release(sub)

    async def push(self, topic: str, message: Message, key: str) -> None:
        await self.queues.push(topic, message, key)

    async def consume(self, topic: str) -> Subscription:
        return await self.queues.consume(topic)

    async def discard(self, topic: str) -> None:
        await self.queues.discard(topic)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.queues.aclose()
        await self.batcher.aclose()
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
