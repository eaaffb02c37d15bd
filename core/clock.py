"""Time as a dependency.

Rules such as "a connect number lives 120 s" or "a recording stops after 120 minutes" are tested by moving a
:class:`ManualClock` forward instead of sleeping. Production code takes any :data:`Clock` and defaults to
:func:`wall_clock`, or to :data:`monotonic_clock` where only intervals matter and a wall clock set back or
forward must not disturb them (the media relay's keyframe spacing and report intervals).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

Clock = Callable[[], float]
"""Returns seconds as a float: since the Unix epoch (``wall_clock``), or since an arbitrary moment
(``monotonic_clock``) for code that only measures intervals."""

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


monotonic_clock: Clock = time.monotonic
"""Seconds since an arbitrary moment, never going back; the builtin itself, as the media relay reads it per
packet."""


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


class RunningClock:
    """Monotonic time that a test can also move forward at once: for rules over live traffic (the media
    relay's), where time must pass as packets flow and a test jumps past an interval instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self.offset += seconds
