"""Time as a dependency.

Rules such as "a connect number lives 120 s" or "a recording stops after 120 minutes" are tested by moving a
:class:`ManualClock` forward instead of sleeping. Production code takes any :data:`Clock` and defaults to
:func:`wall_clock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

Clock = Callable[[], float]
"""Returns seconds since the Unix epoch as a float."""

# Japan has no daylight saving time; the product serves Japan, so times are shown (and weeks and days of
# filters and reports counted) in JST. Everything is stored in UTC.
JST = timezone(timedelta(hours=9), "JST")


def utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; they were stored in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def in_jst(moment: datetime) -> datetime:
    return utc(moment).astimezone(JST)


def wall_clock() -> float:
    return time.time()


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self.now += seconds
