"""Sliding-window rate limits, in-process or shared between nodes through Redis.

A :class:`RateLimiter` counts events per key within a window. ``retry_after`` tells how long until the key
is under its limit again (``0`` when it already is); ``add`` records one event. Both implementations take
their time from an injectable clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import abc
import uuid
from collections import deque
from typing import TYPE_CHECKING

from core.clock import Clock, wall_clock

if TYPE_CHECKING:
    from redis.asyncio import Redis


class RateLimiter(abc.ABC):
    def __init__(self, limit: int, window: float, clock: Clock = wall_clock) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.clock = clock

    @abc.abstractmethod
    async def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again; 0 when it is under its limit now."""

    @abc.abstractmethod
    async def add(self, key: str) -> None:
        """Record one event for ``key``."""

    @abc.abstractmethod
    async def reset(self, key: str) -> None:
        """Forget ``key``'s events (after a successful sign-in, say)."""


class MemoryRateLimiter(RateLimiter):
    """Keeps timestamps per key in this process; right for a single node."""

    def __init__(self, limit: int, window: float, clock: Clock = wall_clock) -> None:
        super().__init__(limit, window, clock)
        self._events: dict[str, deque[float]] = {}

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    async def retry_after(self, key: str) -> float:
        now = self.clock()
        events = self._prune(key, now)
        if len(events) < self.limit:
            return 0.0
        return events[len(events) - self.limit] + self.window - now

    async def add(self, key: str) -> None:
        now = self.clock()
        self._prune(key, now)
        self._events.setdefault(key, deque()).append(now)

    async def reset(self, key: str) -> None:
        self._events.pop(key, None)


class RedisRateLimiter(RateLimiter):
    """Keeps timestamps per key in a Redis sorted set, so every node sees the same counts."""

    def __init__(
        self, redis: Redis, limit: int, window: float, clock: Clock = wall_clock, prefix: str = "rl"
    ) -> None:
        super().__init__(limit, window, clock)
        self.redis = redis
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"tsunagu:{self.prefix}:{key}"

    async def retry_after(self, key: str) -> float:
        now = self.clock()
        rkey = self._key(key)
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
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(rkey, {uuid.uuid4().hex: now})
            pipe.expire(rkey, int(self.window) + 1)
            await pipe.execute()

    async def reset(self, key: str) -> None:
        await self.redis.delete(self._key(key))
