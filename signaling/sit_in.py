"""同席 (sitting in), sans I/O: managers watching a live meeting read-only.

:class:`~signaling.room.Room` keeps one :class:`SittingIn` and turns its answers into frames, like it does
for :mod:`signaling.call_media`. An observer is a third kind of connection beside the two seats: it gets what
the participants see (the document, the memo, both sides' media state, presence) but is never a seat and
never sends into the room (the socket edge refuses any frame from it, see web/sit_in.py). Its video comes
from the relay on receive-only m-lines (:data:`OBSERVED`), negotiated over HTTP (:class:`Watch`).

Rules:
- Only a room that has not ended can be watched; the room's end closes its observers (4010).
- The participants are told 「上長が同席中」 (``sit_in`` frame, ``present: true``) while at least one observer
  who joined with ``announce`` (the org's setting, default on) is watching, and again on every (re)connect;
  ``present: false`` when the last one leaves.
- An observer's media offer is taken only from the observer's own connection and user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.protocol import Role

# The observer's m-lines, in order: which seat's which m-line each receives (docs/protocol.md, "Sitting in").
CAMERA, SCREEN = 0, 1
OBSERVED: tuple[tuple[str, int], ...] = (
    (Role.HOST.value, CAMERA),
    (Role.GUEST.value, CAMERA),
    (Role.HOST.value, SCREEN),
    (Role.GUEST.value, SCREEN),
)


def observer_seat(connection: str) -> str:
    """The observer's seat in the room's media relay (never "host" or "guest")."""
    return f"observer:{connection}"


@dataclass(frozen=True)
class Watch:
    """Answer observer ``connection``'s SDP offer with a receive-only peer connection (``OBSERVED`` m-lines)
    from the room's relay; the answer goes to ``connection`` as ``media.answer``."""

    connection: str
    sdp: str


@dataclass(frozen=True)
class StopWatching:
    """Observer ``connection`` left: close its peer connection."""

    connection: str


@dataclass(frozen=True)
class Observer:
    user_id: int
    announce: bool
    since: float


@dataclass
class SittingIn:
    observers: dict[str, Observer] = field(default_factory=dict)  # by connection

    @property
    def shown(self) -> bool:
        """Whether the participants should see 「上長が同席中」 now."""
        return any(observer.announce for observer in self.observers.values())

    def join(self, connection: str, user_id: int, announce: bool, now: float) -> bool:
        """Add an observer; True when the participants must now be told someone sits in."""
        before = self.shown
        self.observers[connection] = Observer(user_id, announce, now)
        return self.shown and not before

    def leave(self, connection: str) -> bool:
        """Remove an observer; True when the participants must now be told nobody sits in any more."""
        before = self.shown
        if self.observers.pop(connection, None) is None:
            return False
        return before and not self.shown

    def offer(self, connection: str, user_id: int, sdp: str) -> list[Watch]:
        observer = self.observers.get(connection)
        return [Watch(connection, sdp)] if observer is not None and observer.user_id == user_id else []
