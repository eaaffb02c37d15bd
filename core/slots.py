"""Counted slots: at most ``per_key`` of something at once per key (uploads per sender, lobby sockets per
browser and per address), in this process.

Taking slots never awaits, so a burst of simultaneous requests cannot all slip past the count; taking
several keys at once is all or nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Slots:
    def __init__(self, per_key: int, refusal: Callable[[], Exception]) -> None:
        if per_key < 1:
            raise ValueError("per_key must be >= 1")
        self.per_key = per_key
        self.refusal = refusal
        self._held: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """One slot of every key for the ``with`` block; raises ``refusal()`` when any key has none free."""
        if any(self._held.get(key, 0) >= self.per_key for key in keys):
            raise self.refusal()
        for key in keys:
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            for key in keys:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]

    def held(self, key: str) -> int:
        return self._held.get(key, 0)
