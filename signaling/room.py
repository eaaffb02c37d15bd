"""A room as a state machine: events in, effects out, no I/O (the way ``websockets`` keeps its protocol).

The home node feeds a :class:`Room` with connects, disconnects, validated client messages and clock ticks,
and carries out the :data:`Effect` values it returns: frames to send, connections to close, state to store.
Tests drive it directly, with no sockets and a hand-moved clock.

Rules (seed 004, 終了, plus a rejoin window bellFace lacks):
- The room is ``waiting`` until both sides have connected once, then ``active``; ``ended`` is final.
- The host's 終了 ends the room for both. The guest's 終了 makes the guest ``left``; the host stays and is
  told. A left guest cannot come back.
- A connection that drops without 終了 is ``reconnecting``; the same participant may reconnect within
  ``grace`` seconds (default 5 minutes) with no new number. After that it is ``left``; a host that does not
  come back ends the room.
- A second connection for the same seat replaces the first (a reloaded tab), which is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.models import RoomState
from signaling.protocol import (
    ClientMessage,
    CloseCode,
    End,
    Ended,
    Peers,
    Ping,
    Pong,
    Presence,
    PresenceChanged,
    Role,
    RoomInfo,
    RoomStateChanged,
    ServerMessage,
    Welcome,
)

DEFAULT_GRACE_SECONDS = 300.0


@dataclass(frozen=True)
class Send:
    """Send ``message`` to the connection ``to`` (a connection id), or to every connection but ``exclude``."""

    message: ServerMessage
    to: str | None = None
    exclude: str | None = None


@dataclass(frozen=True)
class Close:
    connection: str
    code: CloseCode


@dataclass(frozen=True)
class StateChanged:
    """Store the room's new state (and, when ended, the end of the meeting record)."""

    state: RoomState


Effect = Send | Close | StateChanged


class RoomError(Exception):
    """Raised when an event does not fit the room's state; the caller closes the connection with ``code``."""

    def __init__(self, code: CloseCode) -> None:
        super().__init__(code.name)
        self.code = code


@dataclass
class Seat:
    presence: Presence = Presence.ABSENT
    connection: str | None = None
    since: float = 0.0


@dataclass
class Room:
    id: str
    connect_id: str
    state: RoomState = RoomState.WAITING
    grace: float = DEFAULT_GRACE_SECONDS
    seats: dict[Role, Seat] = field(default_factory=lambda: {Role.HOST: Seat(), Role.GUEST: Seat()})

    # Inputs

    def connect(self, role: Role, connection: str, now: float) -> list[Effect]:
        seat = self.seats[role]
        if self.state == RoomState.ENDED:
            raise RoomError(CloseCode.ROOM_ENDED)
        if seat.presence == Presence.LEFT:
            raise RoomError(CloseCode.LEFT)
        if seat.presence == Presence.RECONNECTING and now - seat.since >= self.grace:
            raise RoomError(CloseCode.REJOIN_EXPIRED)
        effects: list[Effect] = []
        if seat.connection is not None:
            effects.append(Close(seat.connection, CloseCode.REPLACED))
        seat.connection, seat.presence, seat.since = connection, Presence.CONNECTED, now
        if self.state == RoomState.WAITING and all(
            s.presence != Presence.ABSENT for s in self.seats.values()
        ):
            self.state = RoomState.ACTIVE
            effects.append(StateChanged(RoomState.ACTIVE))
            effects.append(Send(RoomStateChanged(state=self.state), exclude=connection))
        effects.append(Send(self._welcome(role), to=connection))
        effects.append(Send(PresenceChanged(role=role, presence=Presence.CONNECTED), exclude=connection))
        return effects

    def disconnect(self, role: Role, connection: str, now: float) -> list[Effect]:
        """The socket closed without 終了. Ignored for a connection that was already replaced."""
        seat = self.seats[role]
        if seat.connection != connection or self.state == RoomState.ENDED:
            return []
        seat.connection, seat.presence, seat.since = None, Presence.RECONNECTING, now
        return [Send(PresenceChanged(role=role, presence=Presence.RECONNECTING))]

    def receive(self, role: Role, connection: str, message: ClientMessage, now: float) -> list[Effect]:
        if self.state == RoomState.ENDED:
            return [Close(connection, CloseCode.ROOM_ENDED)]
        if self.seats[role].connection != connection:
            return [Close(connection, CloseCode.REPLACED)]
        match message:
            case Ping():
                return [Send(Pong(), to=connection)]
            case End() if role == Role.HOST:
                return self._end("host")
            case End():
                return self._guest_leaves(now)
        raise AssertionError(f"unhandled message {message!r}")  # pragma: no cover - the union is exhaustive

    def tick(self, now: float) -> list[Effect]:
        """Let time pass: seats that stayed away past the grace period have left."""
        effects: list[Effect] = []
        if self.state == RoomState.ENDED:
            return effects
        host = self.seats[Role.HOST]
        if host.presence == Presence.RECONNECTING and now - host.since >= self.grace:
            return self._end("timeout")
        guest = self.seats[Role.GUEST]
        if guest.presence == Presence.RECONNECTING and now - guest.since >= self.grace:
            guest.presence, guest.since = Presence.LEFT, now
            effects.append(Send(PresenceChanged(role=Role.GUEST, presence=Presence.LEFT)))
        return effects

    def abort(self) -> list[Effect]:
        """End the room because something went wrong on the server (its home task failed)."""
        return [] if self.state == RoomState.ENDED else self._end("timeout")

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, if ever."""
        waiting = [s.since + self.grace for s in self.seats.values() if s.presence == Presence.RECONNECTING]
        return min(waiting) if waiting and self.state != RoomState.ENDED else None

    # Helpers

    def _welcome(self, role: Role) -> Welcome:
        return Welcome(
            role=role,
            room=RoomInfo(
                id=self.id, state=self.state, connect_id=self.connect_id if role == Role.HOST else ""
            ),
            peers=Peers(host=self.seats[Role.HOST].presence, guest=self.seats[Role.GUEST].presence),
        )

    def _end(self, by: str) -> list[Effect]:
        self.state = RoomState.ENDED
        effects: list[Effect] = [
            StateChanged(RoomState.ENDED),
            Send(Ended(by="host" if by == "host" else "timeout")),
        ]
        for seat in self.seats.values():
            if seat.connection is not None:
                effects.append(Close(seat.connection, CloseCode.ROOM_ENDED))
            seat.connection = None
            if seat.presence != Presence.ABSENT:
                seat.presence = Presence.LEFT
        return effects

    def _guest_leaves(self, now: float) -> list[Effect]:
        guest = self.seats[Role.GUEST]
        connection = guest.connection
        guest.connection, guest.presence, guest.since = None, Presence.LEFT, now
        effects: list[Effect] = [Send(PresenceChanged(role=Role.GUEST, presence=Presence.LEFT))]
        if connection is not None:
            effects.append(Close(connection, CloseCode.LEFT))
        return effects
