"""The broker's queues over Redis Streams: commands to a room's home that survive a lost connection.

The contract (exactly once per key, per-pusher order, acknowledged push, never dropped) is the "Queues"
part of :mod:`signaling.broker`; :class:`~signaling.redis_broker.RedisBroker` delegates to
:class:`RedisQueues`. A queue is the stream ``{prefix}:{topic}``; each entry has the message's key (``k``)
and its JSON (``m``).

- **Push**: ``XADD`` (in one pipeline with whatever else the node sends meanwhile:
  :mod:`signaling.redis_batch`), trimmed to about :data:`STREAM_MAXLEN` entries; a stream is kept for
  :data:`STREAM_TTL_SECONDS` after a pusher last refreshed its time to live (every
  :data:`EXPIRY_REFRESH_SECONDS` at most). A connection error is retried with the same key until
  ``push_timeout``; a push that reached Redis before its reply was lost is then stored twice, and the
  reader drops the copy.
- **Read**: ONE task per node reads every stream it has readers for with a blocking ``XREAD`` from each
  reader's last position, so a connection that fails (Redis restarted, a connection killed) loses nothing:
  the next ``XREAD`` starts where the last one stopped. A new reader starts at the stream's last entry when
  :meth:`RedisQueues.consume` is called, and wakes the reading task through a small per-node stream.
- A reader whose queue is full is left out of the ``XREAD`` until it has room; its entries wait in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from core.errors import Unavailable
from signaling.broker import (
    BrokerClosed,
    KeyedSubscription,
    Message,
    QueueSubscription,
    Subscription,
    decode,
    encode,
)
from signaling.redis_batch import Batcher

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("tsunagu.broker")

STREAM_MAXLEN = 10_000
STREAM_TTL_SECONDS = 24 * 3600
EXPIRY_REFRESH_SECONDS = 600.0  # a pusher refreshes a stream's time to live at most this often
PUSH_TIMEOUT = 5.0
READ_BLOCK_MS = 1000  # the reading task wakes at least this often (a new reader wakes it at once)
PAUSED_BLOCK_MS = 50  # ... and this often while a reader is full, to feed it as soon as it has room
RETRY_FIRST_DELAY = 0.05
RETRY_MAX_DELAY = 1.0
READ_COUNT = 500


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class _Reader:
    def __init__(self, subscription: KeyedSubscription, position: str) -> None:
        self.subscription = subscription
        self.position = position  # the last entry handed over (or skipped as a copy)
        self.order = _order(position)


class RedisQueues:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        queue_size: int,
        *,
        batcher: Batcher,
        push_timeout: float = PUSH_TIMEOUT,
    ) -> None:
        self.redis = redis
        self.batcher = batcher  # the broker's: pushes go with its publishes (it closes the batcher)
        self.prefix = prefix
        self.queue_size = queue_size
        self.push_timeout = push_timeout
        self._readers: dict[str, list[_Reader]] = {}  # stream -> readers on this node
        self._wake_stream = f"{prefix}:wake:{uuid.uuid4().hex}"
        self._wake_position = "0-0"
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._expiry_set: dict[str, float] = {}  # stream -> when this process last refreshed its TTL

    def stream(self, topic: str) -> str:
        return f"{self.prefix}:{topic}"

    def _remember_expiry(self, stream: str, when: float) -> None:
        self._expiry_set[stream] = when
        if len(self._expiry_set) > 10_000:  # forget the oldest: at worst one more EXPIRE for them
            del self._expiry_set[next(iter(self._expiry_set))]

    async def push(self, topic: str, message: Message, key: str) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        payload = encode(message)
        if self._closed:
            raise BrokerClosed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.push_timeout
        delay = RETRY_FIRST_DELAY
        stream = self.stream(topic)
        while True:
            try:
                now = loop.time()
                add = ("XADD", stream, "MAXLEN", "~", STREAM_MAXLEN, "*", "k", key, "m", payload)
                if now - self._expiry_set.get(stream, -EXPIRY_REFRESH_SECONDS) >= EXPIRY_REFRESH_SECONDS:
                    # The time to live is refreshed now and then, not on every push (half the commands).
                    await self.batcher.execute(add, ("EXPIRE", stream, STREAM_TTL_SECONDS))
                    self._remember_expiry(stream, now)
                else:
                    # With what else this node sends meanwhile, in one pipeline (signaling/redis_batch.py).
                    await self.batcher.execute(add)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if loop.time() + delay > deadline:
                    raise Unavailable() from exc
                log.warning("broker.push_retrying", topic=topic, error=f"{type(exc).__name__}: {exc}")
            except RedisError as exc:
                raise Unavailable() from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    async def consume(self, topic: str) -> Subscription:
        from redis.exceptions import RedisError

        if self._closed:
            raise BrokerClosed()
        stream = self.stream(topic)
        try:
            last = await self.redis.xrevrange(stream, count=1)
        except RedisError as exc:
            raise Unavailable() from exc
        position = _text(last[0][0] or b"0-0") if last else "0-0"
        subscription = KeyedSubscription(topic, self.queue_size, self._release)
        self._readers.setdefault(stream, []).append(_Reader(subscription, position))
        if self._task is None:
            self._task = asyncio.create_task(self._read(), name=f"broker-queues:{self.prefix}")
        await self._wake()
        return subscription

    async def discard(self, topic: str) -> None:
        with contextlib.suppress(Exception):
            await self.redis.delete(self.stream(topic))

    async def _wake(self) -> None:
        """Interrupt the reading task's blocking XREAD, so it reads a new stream at once."""
        with contextlib.suppress(Exception):  # at worst the new stream is read READ_BLOCK_MS later
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_stream, {"w": "1"}, maxlen=10, approximate=True)
                pipe.expire(self._wake_stream, 3600)
                await pipe.execute()

    async def _release(self, subscription: QueueSubscription) -> None:
        stream = self.stream(subscription.topic)
        readers = [r for r in self._readers.get(stream, []) if r.subscription is not subscription]
        if readers:
            self._readers[stream] = readers
        else:
            self._readers.pop(stream, None)

    async def _read(self) -> None:
        delay = RETRY_FIRST_DELAY
        failed = False
        # ``while not closed`` as well as CancelledError: on Python 3.11 redis-py's read timeout can turn the
        # cancellation of aclose() into a TimeoutError, which would otherwise keep this loop going for ever.
        while not self._closed:
            try:
                streams: dict[Any, Any] = {}
                paused = False
                for stream, readers in self._readers.items():
                    if any(r.subscription.full for r in readers):
                        paused = True  # its entries wait in Redis until the reader has room
                        continue
                    streams[stream] = min(readers, key=lambda r: r.order).position
                streams[self._wake_stream] = self._wake_position
                block = PAUSED_BLOCK_MS if paused else READ_BLOCK_MS
                response = await self.redis.xread(streams, count=READ_COUNT, block=block)
                if failed:
                    log.info("broker.queues_reconnected", queues=len(self._readers))
                    failed, delay = False, RETRY_FIRST_DELAY
                items: Any = response.items() if isinstance(response, dict) else (response or [])
                for name, entries in items:
                    self._handle(_text(name), entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closed:
                    return
                # Nothing is lost: the next XREAD starts from every reader's last position.
                failed = True
                log.warning(
                    "broker.queues_reconnecting", error=f"{type(exc).__name__}: {exc}", retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)

    def _handle(self, stream: str, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        if stream == self._wake_stream:
            if entries:
                self._wake_position = _text(entries[-1][0])
            return
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            order = _order(entry_id)
            for reader in self._readers.get(stream, []):
                if order <= reader.order or reader.subscription.full:
                    continue  # handed over already, or read again once the reader has room
                reader.position, reader.order = entry_id, order
                key = _text(fields.get(b"k", fields.get("k", b"")))
                if not reader.subscription.first_time(key):
                    continue  # a pusher's retry of a push that had arrived
                try:
                    message = decode(fields.get(b"m", fields.get("m", b"")))
                except (ValueError, UnicodeDecodeError) as exc:
                    log.warning("broker.undecodable", queue=stream, error=f"{type(exc).__name__}: {exc}")
                    continue
                reader.subscription.offer(message)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        readers, self._readers = self._readers, {}
        for group in readers.values():
            for reader in group:
                reader.subscription.end()
        with contextlib.suppress(Exception):
            await self.redis.delete(self._wake_stream)
