"""Time as a dependency.

Rules such as "a connect number lives 120 s" or "a recording stops after 120 minutes" are tested by moving a
:class:`ManualClock` forward instead of sleeping. Production code takes any :data:`Clock` and defaults to
:func:`wall_clock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns seconds since the Unix epoch as a float."""


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
