"""A room's connections, on whichever node holds their sockets: what the room's home sends each
(:class:`Outgoing`, from :meth:`Connection.outgoing`), and what a participant or a sitting-in manager sends
the room, through the node's hub as :class:`RoomDoor` describes it (``signaling.hub.RoomHub`` is the one).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from core.errors import Unavailable
from signaling.broker import QueueSubscription, Subscription, SubscriptionClosed, is_resumed
from signaling.protocol import ClientMessage, CloseCode, Role

log = structlog.get_logger("tsunagu.rooms")


class RoomDoor(Protocol):
    """What a connection asks of its node's hub."""

    node: str  # this node's id

    def inline(self, participant: Participant, message: ClientMessage) -> bool:
        """Handle ``message`` at once when the room is homed here and idle (the memo's fast path)."""
        ...

    def quick_now(self, room_id: str) -> bool:
        """Whether :meth:`quick_memo` may be called for ``room_id`` now."""
        ...

    def quick_memo(self, room_id: str, role: Role, connection: str, data: str, awareness: bool) -> None:
        """A keystroke's (or caret's) data through the fast path, just after :meth:`quick_now` said yes."""
        ...

    async def to_home(
        self, room_id: str, kind: str, participant: Participant, message: ClientMessage | None = None
    ) -> None:
        """Tell the room's home, wherever it is, that ``participant`` connected, sent, or disconnected."""
        ...

    async def post(self, room_id: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to the room's home, wherever it is."""
        ...


@dataclass(frozen=True)
class Outgoing:
    """What a participant's socket must do next: send ``text`` (a frame already serialized as JSON), send
    ``frame`` (an error frame as a dict, whose message id the socket translates), or close with ``close``."""

    frame: dict[str, Any] | None = None
    close: CloseCode | None = None
    text: str | None = None

    @property
    def message(self) -> dict[str, Any] | None:
        """The frame as a dict, whichever form it came in (tests, tools; sockets send ``text`` as it is)."""
        return json.loads(self.text) if self.text is not None else self.frame


class Connection:
    """One socket's view of a room, on whichever node holds the socket: what the home sends it."""

    def __init__(self, hub: RoomDoor, room_id: str, connection: str, subscription: Subscription) -> None:
        self.hub = hub
        self.room_id = room_id
        self.connection = connection
        self._subscription = subscription
        self._gone = False
        self._waiting = False  # outgoing()'s reader has handled what it took and waits for more

    async def outgoing(self) -> AsyncIterator[Outgoing]:
        """Frames and closes addressed to this connection, until it is closed."""
        while True:
            self._waiting = True
            try:
                item = await self._subscription.get()
            except SubscriptionClosed:
                return
            finally:
                self._waiting = False
            if "rehomed" in item or is_resumed(item):
                # A new home adopted the room (signaling/homes.py), or frames were lost on the way (Redis
                # restarted): say we are here; the home welcomes the socket again and the page re-syncs.
                await self._rehomed()
                continue
            if "close" in item:
                if item["connection"] == self.connection:
                    yield Outgoing(close=CloseCode(item["close"]))
                    return
                continue
            if item.get("to") not in (None, self.connection) or item.get("exclude") == self.connection:
                continue
            text = item.get("text")
            yield Outgoing(text=text) if text is not None else Outgoing(frame=item["send"])

    def send_directly(self, send_now: Callable[[str], bool] | None) -> None:
        """Let ``send_now`` write this connection's frames (already serialized) at once, in the task that
        produced them, whenever nothing is waiting before them: no task switch per frame. Only while
        :meth:`outgoing`'s reader waits for more (so order is kept), and only plain frames for this
        connection; ``send_now`` returns False when the socket cannot take one at once, which then waits in
        the queue as any other. None: stop."""
        subscription = self._subscription
        if not isinstance(subscription, QueueSubscription):
            return
        if send_now is None:
            subscription.direct = None
            return

        def direct(item: dict[str, Any]) -> bool:
            if not self._waiting or len(item) != 3:  # {"text", "to", "exclude"}: a frame, nothing else
                return False
            text = item.get("text")
            if (
                text is None
                or item["to"] not in (None, self.connection)
                or item["exclude"] == self.connection
            ):
                return False
            return send_now(text)

        subscription.direct = direct

    async def _rehomed(self) -> None:
        """The room has a new home, which never heard of this socket, or frames to it were lost."""


class Participant(Connection):
    """A participant's (host's or guest's) connection."""

    def __init__(
        self, hub: RoomDoor, room_id: str, role: Role, connection: str, subscription: Subscription
    ) -> None:
        super().__init__(hub, room_id, connection, subscription)
        self.role = role

    async def send(self, message: ClientMessage) -> None:
        if not self.hub.inline(self, message):
            await self.hub.to_home(self.room_id, "message", self, message)

    def takes_memo_now(self) -> bool:
        """Whether :meth:`send_memo_now` and :meth:`send_awareness_now` would take a frame now: its room
        here and idle."""
        return self.hub.quick_now(self.room_id)

    def send_memo_now(self, data: str) -> None:
        """:meth:`send` of ``MemoSync(data=data)`` without waiting, just after :meth:`takes_memo_now` said
        yes (nothing may have happened in between: the room's readiness is not checked again). The socket's
        lane for keystrokes reads the data without building the message."""
        self.hub.quick_memo(self.room_id, self.role, self.connection, data, awareness=False)

    def send_awareness_now(self, data: str) -> None:
        """As :meth:`send_memo_now`, for ``MemoAwareness(data=data)`` (the caret, sent with keystrokes)."""
        self.hub.quick_memo(self.room_id, self.role, self.connection, data, awareness=True)

    async def _rehomed(self) -> None:
        # Connect again: what was sent to the dead home before it died is lost with it.
        try:
            await self.hub.to_home(self.room_id, "connect", self)
        except Unavailable:
            log.warning("room.reconnect_not_delivered", room=self.room_id, role=self.role.value)

    async def disconnected(self) -> None:
        """The socket is gone (whatever the reason); the home decides what that means."""
        try:
            if not self._gone:
                self._gone = True
                await self.hub.to_home(self.room_id, "disconnect", self)
        except Unavailable:
            # The home cannot be told now; it learns the seat is gone when the browser reconnects (a new
            # connection replaces this one) or never returns (the host's grace runs out on its own).
            log.warning("room.disconnect_not_delivered", room=self.room_id, role=self.role.value)
        finally:
            await self._subscription.close()


class Watcher(Connection):
    """A manager sitting in (signaling/sit_in.py): frames come out; nothing it does goes into the room."""

    def __init__(
        self,
        hub: RoomDoor,
        room_id: str,
        connection: str,
        subscription: Subscription,
        user_id: int,
        announce: bool,
    ) -> None:
        super().__init__(hub, room_id, connection, subscription)
        self.user_id = user_id
        self.announce = announce

    async def observe(self) -> None:
        event = {"event": "observe", "connection": self.connection, "node": self.hub.node}
        await self.hub.post(self.room_id, {**event, "user": self.user_id, "announce": self.announce})

    async def _rehomed(self) -> None:
        # Observe again: a new home never heard of this watcher, and after a Redis restart the frames lost on
        # the way (memo edits, page turns) are only made good by the home's welcome and whole memo.
        try:
            await self.observe()
        except Unavailable:
            log.warning("room.observe_not_delivered", room=self.room_id)

    async def disconnected(self) -> None:
        try:
            if not self._gone:
                self._gone = True
                await self.hub.post(self.room_id, {"event": "unobserve", "connection": self.connection})
        except Unavailable:
            # As for a participant: the home cannot be told now. The observer's seat is receive-only, so a
            # stale one holds nothing up; the room's end forgets it.
            log.warning("room.unobserve_not_delivered", room=self.room_id)
        finally:
            await self._subscription.close()
