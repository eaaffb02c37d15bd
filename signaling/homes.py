"""Where rooms live when there are several nodes: placement of a new room on the least-loaded live node, and
adoption of the rooms of a node that died.

Placement: the node that creates a room (where the host pressed 開始) asks the registry for the least-loaded
live node and records it as the room's home. When that is another node, it asks it — on the node's reliable
queue, ``node:<id>`` — to open the room, and waits (a few seconds at most) until the home says it listens:
a room's queue is read from the moment its home opens it, so nobody may be sent to the room before.

Adoption: every live node looks, every second, for nodes whose heartbeat lapsed (signaling/nodes.py).
Their rooms not ended are shared out among the live nodes (each takes the rooms whose id hashes to its place
in the sorted list of live nodes) and moved with a conditional UPDATE, so that one node wins each room even
when their views differ. The adopter opens the room from the database — its memo as stored; each browser's
socket, cut when its node died, reconnects on its own, sends what it typed meanwhile through the memo's sync
and negotiates its video again with the new home. A dead node with no room left is forgotten. A node that
only looked dead (its loop blocked past the heartbeat's ttl) finds its own key gone at its next beat and lets
go of the rooms adopted meanwhile (:meth:`Homes.fence`): a room never keeps two homes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from signaling.broker import Broker, is_resumed
from signaling.models import RoomRow, RoomState
from signaling.nodes import HEARTBEAT_TTL_SECONDS, NodeRegistry
from signaling.rooms import move_home, rooms_homed_on

if TYPE_CHECKING:
    from signaling.hub import RoomHub

log = structlog.get_logger("tsunagu.homes")

OPEN_WAIT_SECONDS = 3.0  # how long the creating node waits for another node to open a room it placed there
ADOPT_EVERY_SECONDS = 1.0  # how often a node looks for dead nodes (a cheap look at one Redis hash)
RETRY_SECONDS = 1.0  # a node's queue lost (Redis restarting): read it again after this
# A dead node's rooms are adopted at most this long after it died (its heartbeat's key expires, the next look
# finds it), plus what the adopter takes to open them.
ADOPTED_WITHIN_SECONDS = HEARTBEAT_TTL_SECONDS + ADOPT_EVERY_SECONDS


def node_topic(node_id: str) -> str:
    return f"node:{node_id}"


def opened_topic(room_id: str) -> str:
    return f"room:{room_id}:opened"


def share(room_id: str, nodes: int) -> int:
    """Which of ``nodes`` live nodes (sorted by id) adopts ``room_id``: the same answer on every node."""
    return int.from_bytes(hashlib.sha256(room_id.encode()).digest()[:8], "big") % nodes


class Homes:
    def __init__(
        self,
        hub: RoomHub,
        registry: NodeRegistry,
        broker: Broker,
        sessions: async_sessionmaker[AsyncSession],
        *,
        every: float = ADOPT_EVERY_SECONDS,
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.broker = broker
        self.sessions = sessions
        self.every = every
        self.node_id = registry.node_id
        self.adopted = 0  # rooms this node took over from dead nodes (for tests and logs)
        self._tasks: list[asyncio.Task[None]] = []
        registry.on_lapsed = self.fence

    # Placement

    async def place(self) -> str:
        """The node a new room is homed on: the least-loaded live one (this one when Redis cannot say)."""
        try:
            return await self.registry.least_loaded()
        except Exception as exc:
            log.warning("homes.placement_failed", error=repr(exc))
            return self.node_id

    async def open_at(self, node_id: str, room_id: str, connect_id: str, recording: bool) -> None:
        """Have ``node_id`` open the new room ``room_id`` as its home (``recording``: the host's switch);
        returns once it listens (or after :data:`OPEN_WAIT_SECONDS`: a home that died meanwhile is then
        replaced by adoption)."""
        if node_id == self.node_id:
            await self.hub.open(room_id, connect_id, recording=recording)
            return
        async with await self.broker.subscribe(opened_topic(room_id)) as opened:
            request = {"event": "open", "room": room_id, "connect_id": connect_id, "recording": recording}
            await self.broker.push(node_topic(node_id), request, key=uuid.uuid4().hex)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OPEN_WAIT_SECONDS):
                    async for message in opened:
                        if not is_resumed(message):  # a lost Redis connection's marker is no answer
                            return
        log.warning("homes.open_unanswered", room=room_id, node=node_id)

    async def _requests(self) -> None:
        """Open the rooms other nodes placed here, for as long as this node runs."""
        while True:
            try:
                async with await self.broker.consume(node_topic(self.node_id)) as requests:
                    async for request in requests:
                        await self._open_requested(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("homes.requests_lost", error=repr(exc))
            await asyncio.sleep(RETRY_SECONDS)

    async def _open_requested(self, request: dict[str, Any]) -> None:
        room_id, connect_id = request.get("room"), request.get("connect_id")
        if request.get("event") != "open" or not isinstance(room_id, str) or not isinstance(connect_id, str):
            log.warning("homes.bad_request", request=repr(request)[:200])
            return
        try:
            await self.hub.open(room_id, connect_id, recording=request.get("recording") is True)
            await self.broker.publish(opened_topic(room_id), {"room": room_id})
        except Exception as exc:
            log.warning("homes.open_failed", room=room_id, error=repr(exc))

    # Adoption

    async def adopt(self) -> list[str]:
        """Take this node's share of the rooms of every dead node; the rooms it opened."""
        dead = await self.registry.dead()
        if not dead:
            return []
        alive = sorted({n.node_id for n in await self.registry.alive()} | {self.node_id})
        place = alive.index(self.node_id)
        taken: list[str] = []
        for node in dead:
            async with self.sessions() as db:
                rooms = await rooms_homed_on(db, node.node_id)
            if not rooms:
                await self.registry.forget(node.node_id)
                continue
            for room_id, state, connect_id, recording in rooms:
                if share(room_id, len(alive)) != place:
                    continue
                async with self.sessions.begin() as db:
                    won = await move_home(db, room_id, node.node_id, self.node_id)
                if won:
                    await self.hub.open(room_id, connect_id, state, recording, rehome=True)
                    taken.append(room_id)
                    log.info("room.adopted", room=room_id, dead_node=node.node_id, node=self.node_id)
        self.adopted += len(taken)
        return taken

    async def _adopting(self) -> None:
        try:
            await self.reopen_own()
        except Exception as exc:
            log.warning("homes.reopen_failed", error=repr(exc))
        while True:
            try:
                await self.adopt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the database away for a moment: look again next round
                log.warning("homes.adoption_failed", error=repr(exc))
            await asyncio.sleep(self.every)

    async def fence(self) -> None:
        """This node looked dead for a moment: let go of every room another node has adopted meanwhile, so
        that a room never has two homes (its sockets here close with 4503 and reconnect to the new one)."""
        for room_id in self.hub.homed_rooms():
            async with self.sessions() as db:
                homed = await db.get(RoomRow, room_id)
            if homed is not None and homed.home_node != self.node_id:
                log.warning("room.let_go", room=room_id, node=self.node_id, home=homed.home_node)
                await self.hub.release(room_id)

    async def reopen_own(self) -> None:
        """After a restart under the same node id: open the rooms still homed here, so sockets on other
        nodes reach them without waiting for one on this node."""
        async with self.sessions() as db:
            rooms = await rooms_homed_on(db, self.node_id)
        for room_id, state, connect_id, recording in rooms:
            if state == RoomState.ACTIVE:  # a waiting room opens when someone comes
                await self.hub.open(room_id, connect_id, state, recording, rehome=True)

    # Lifetime

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._requests(), name="homes-requests"),
            asyncio.create_task(self._adopting(), name="homes-adoption"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
