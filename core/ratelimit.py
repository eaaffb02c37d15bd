"""Sliding-window rate limits, in-process or shared between nodes through Redis.

A :class:`RateLimiter` counts events per key within a window. :meth:`RateLimiter.hit` is the one operation a
limit that must hold under concurrent requests uses: it checks every key and, only when all of them are
under the limit, counts the event on each, in one atomic step (plain code with no ``await`` in between
in-process, one Lua script in Redis). Checking first and counting later, with awaits between, lets a burst of
simultaneous requests all pass the check before any of them is counted.

A hit that turns out fine (a correct password, a number that was redeemed) is taken back with
:meth:`RateLimiter.undo`, so limits that count failures count only failures while still refusing a burst
that is in flight. ``retry_after`` and ``add`` remain for reading and for counting unconditionally. All
implementations take their time from an injectable clock, so tests move time instead of sleeping.

Redis errors are translated at this edge into :class:`core.errors.SharedStoreUnavailable` (HTTP 503).
"""

from __future__ import annotations

import abc
import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.clock import Clock, wall_clock
from core.redis_errors import redis_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True)
class Hit:
    """The answer of :meth:`RateLimiter.hit`: counted (``retry_after`` 0) or refused with the wait."""

    keys: tuple[str, ...]
    event: str  # the counted event's id, to take it back with ``undo``
    retry_after: float

    @property
    def counted(self) -> bool:
        return self.retry_after <= 0


class RateLimiter(abc.ABC):
    def __init__(self, limit: int, window: float, clock: Clock = wall_clock) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.clock = clock

    @abc.abstractmethod
    async def hit(self, *keys: str) -> Hit:
        """Atomically: when every key is under its limit, count one event on each; otherwise count nothing
        and say how long until all of them would be under it."""

    @abc.abstractmethod
    async def undo(self, hit: Hit) -> None:
        """Take back the event ``hit`` counted (nothing for a refused hit)."""

    @abc.abstractmethod
    async def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again; 0 when it is under its limit now."""

    @abc.abstractmethod
    async def add(self, key: str) -> None:
        """Record one event for ``key``, whatever its count."""

    @abc.abstractmethod
    async def reset(self, key: str) -> None:
        """Forget ``key``'s events (after a successful sign-in, say)."""


class MemoryRateLimiter(RateLimiter):
    """Keeps (time, event id) per key in this process; right for a single node. No method awaits, so each
    one is atomic on the event loop."""

    def __init__(self, limit: int, window: float, clock: Clock = wall_clock) -> None:
        super().__init__(limit, window, clock)
        self._events: dict[str, deque[tuple[float, str]]] = {}

    def _prune(self, key: str, now: float) -> deque[tuple[float, str]]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0][0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def _wait(self, key: str, now: float) -> float:
        events = self._prune(key, now)
        if len(events) < self.limit:
            return 0.0
        return events[len(events) - self.limit][0] + self.window - now

    async def hit(self, *keys: str) -> Hit:
        now = self.clock()
        event = uuid.uuid4().hex
        wait = max((self._wait(key, now) for key in keys), default=0.0)
        if wait <= 0:
            for key in keys:
                self._events.setdefault(key, deque()).append((now, event))
        return Hit(tuple(keys), event, wait)

    async def undo(self, hit: Hit) -> None:
        if not hit.counted:
            return
        for key in hit.keys:
            events = self._events.get(key)
            if events is None:
                continue
            for item in events:
                if item[1] == hit.event:
                    events.remove(item)
                    break
            if not events:
                del self._events[key]

    async def retry_after(self, key: str) -> float:
        return self._wait(key, self.clock())

    async def add(self, key: str) -> None:
        now = self.clock()
        self._prune(key, now)
        self._events.setdefault(key, deque()).append((now, uuid.uuid4().hex))

    async def reset(self, key: str) -> None:
        self._events.pop(key, None)


# KEYS: the sorted sets of the keys hit. ARGV: now, now - window (computed in Python: Lua would format it with
# 14 digits), window, limit, event id, key TTL in ms (garbage collection only). Returns the wait as a string:
# Redis turns a Lua number into an integer.
_HIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local key_wait = tonumber(oldest[2]) + window - now
    if key_wait > wait then wait = key_wait end
  end
end
if wait > 0 then return string.format('%.17g', wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[5])
  redis.call('PEXPIRE', key, ARGV[6])
end
return '0'
"""


class RedisRateLimiter(RateLimiter):
    """Keeps (time, event id) per key in a Redis sorted set, so every node sees the same counts."""

    def __init__(
        self, redis: Redis, limit: int, window: float, clock: Clock = wall_clock, prefix: str = "rl"
    ) -> None:
        super().__init__(limit, window, clock)
        self.redis = redis
        self.prefix = prefix
        self._ttl_ms = int((window + 1) * 1000)
        self._hit = redis.register_script(_HIT)

    def _key(self, key: str) -> str:
        return f"tsunagu:{self.prefix}:{key}"

    async def hit(self, *keys: str) -> Hit:
        event = uuid.uuid4().hex
        now = self.clock()
        args: list[str | int] = [repr(now), repr(now - self.window), repr(float(self.window)), self.limit]
        args += [event, self._ttl_ms]
        with redis_errors():
            reply = await self._hit(keys=[self._key(key) for key in keys], args=args)
        wait = float(reply.decode() if isinstance(reply, bytes) else reply)
        return Hit(tuple(keys), event, wait)

    async def undo(self, hit: Hit) -> None:
        if not hit.counted:
            return
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in hit.keys:
                    pipe.zrem(self._key(key), hit.event)
                await pipe.execute()

    async def retry_after(self, key: str) -> float:
        now = self.clock()
        rkey = self._key(key)
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(rkey, "-inf", now - self.window)
                pipe.zrange(rkey, 0, -1, withscores=True)
                _, members = await pipe.execute()
        if len(members) < self.limit:
            return 0.0
        oldest_counted = members[len(members) - self.limit][1]
        return float(oldest_counted) + self.window - now

    async def add(self, key: str) -> None:
        now = self.clock()
        rkey = self._key(key)
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(rkey, {uuid.uuid4().hex: now})
                pipe.expire(rkey, int(self.window) + 1)
                await pipe.execute()

    async def reset(self, key: str) -> None:
        with redis_errors():
            await self.redis.delete(self._key(key))


class TokenBucket:
    """At most ``rate`` events a second on average and ``burst`` at once, for one holder (a connection).

    Sans-I/O: the caller passes the time (the injected clock), so tests move time instead of sleeping."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token if there is one (True), else refuse (False) and spend nothing."""
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
