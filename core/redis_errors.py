"""Redis failures, translated at the edge into the error tree.

Code that talks to Redis (rate limits, connect numbers) wraps the call in ``with redis_errors():``; a Redis
that is down, unreachable, timing out or refusing commands then surfaces as
:class:`~core.errors.SharedStoreUnavailable` (HTTP 503 with a message pages show) instead of a plain 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog

from core.errors import SharedStoreUnavailable

log = structlog.get_logger("tsunagu.redis")


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as exc:
        log.warning("redis unavailable", error=type(exc).__name__, detail=str(exc)[:200])
        raise SharedStoreUnavailable() from exc
