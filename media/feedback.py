"""What the subscribers of a published stream say about it, gathered for its publisher (sans I/O).

A browser's congestion control (Chrome's send-side estimator, without transport-wide feedback as aiortc
negotiates none) lowers its rate on the loss in the receiver reports it gets and never goes above the REMB it
gets. The server sits between, so it passes on what the far ends see, as SFUs do (mediasoup's "worst remote
fraction lost"): the publisher is told the worst loss any subscriber reports and the lowest REMB, so a phone
on a weak link makes the other side send what it can take. Reports count for ``FRESH_FOR`` seconds after they
arrive, so a subscriber that went quiet or left stops holding the publisher down.
"""

from __future__ import annotations

FRESH_FOR = 5.0  # seconds a subscriber's report counts (browsers report about once a second)
CEILING = 2_000_000  # bits/s: the most a publisher is let send (camera + screen) when nobody says less


class Feedback:
    """One published stream's subscribers' latest reports: loss fraction (0–255, as in a report block) and
    REMB bitrate, each with when it arrived. Subscribers are any hashable (the relay uses the peer)."""

    __slots__ = ("_loss", "_bitrate")

    def __init__(self) -> None:
        self._loss: dict[object, tuple[int, float]] = {}
        self._bitrate: dict[object, tuple[int, float]] = {}

    def note_loss(self, subscriber: object, fraction: int, now: float) -> None:
        self._loss[subscriber] = (fraction, now)

    def note_bitrate(self, subscriber: object, bitrate: int, now: float) -> None:
        self._bitrate[subscriber] = (bitrate, now)

    def forget(self, subscriber: object) -> None:
        """``subscriber`` left: its reports no longer count."""
        self._loss.pop(subscriber, None)
        self._bitrate.pop(subscriber, None)

    def worst_loss(self, now: float) -> int:
        """The highest fresh loss fraction reported (0 when none)."""
        return max((value for value, _ in _fresh(self._loss, now)), default=0)

    def lowest_bitrate(self, now: float) -> int | None:
        """The lowest fresh REMB reported, or None when no subscriber has said."""
        return min((value for value, _ in _fresh(self._bitrate, now)), default=None)


def _fresh(reports: dict[object, tuple[int, float]], now: float) -> list[tuple[int, float]]:
    stale = [key for key, (_, at) in reports.items() if now - at > FRESH_FOR]
    for key in stale:
        del reports[key]
    return list(reports.values())


def publisher_bitrate(lowest: list[int | None]) -> int:
    """The REMB for a publisher whose video streams' subscribers report ``lowest`` (one entry per stream):
    the lowest of them, never above ``CEILING``; ``CEILING`` when none has a report."""
    return min([CEILING, *(value for value in lowest if value is not None)])
