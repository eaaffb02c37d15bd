"""Runs rooms over the broker: the home node drives each :class:`~signaling.room.Room`; any node carries
participants' connections.

For room ``R``, the queue ``room:R:in`` carries events to the home node (connect, disconnect, message,
tick); it is the broker's reliable kind (pushed with a key, acknowledged, read exactly once even across a
lost Redis connection), so a 終了 or a page turn from a socket on another node is never lost on the way.
The topic ``room:R:out`` carries the effects back (frames to send, connections to close) to every node
with a participant of ``R``; those are re-synced on reconnect. With the in-process broker both ends are in
one process; with Redis they may not be.

A room's failure stays in that room: its home task logs and ends the room, other rooms go on. A database
that is busy or unreachable for a while is not such a failure: what the room stores goes through the
ordered writer (``signaling/writer.py``), which retries it, and a document that cannot be looked up is
answered with an error frame; the meeting goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

import structlog
from pydantic import TypeAdapter, ValidationError

from core.clock import Clock, wall_clock
from core.errors import Unavailable
from recordings.limit import StartRecording, StopRecording
from signaling import memo_cap
from signaling.broker import (
    DEFAULT_QUEUE_SIZE,
    RESUMED,
    Broker,
    QueueSubscription,
    Subscription,
)
from signaling.call_media import MediaLeave, Negotiate
from signaling.connections import Participant, Watcher
from signaling.home_media import HomeMedia, MediaRelay, RoomRecorder
from signaling.keeping import KeptStore, keep
from signaling.memo import SharedMemo
from signaling.models import RoomState
from signaling.protocol import (
    ClientMessage,
    DocumentInfo,
    ErrorFrame,
    FileInfo,
    MemoAwareness,
    MemoSync,
    MemoSyncOut,
    Role,
    ServerMessage,
)
from signaling.room import (
    DEFAULT_GRACE_SECONDS,
    Close,
    Effect,
    Happened,
    MemoFinal,
    MemoUpdated,
    PageShown,
    ResolveDocument,
    Room,
    RoomError,
    Send,
    SharedDocument,
    StateChanged,
)
from signaling.sit_in import OBSERVED, StopWatching, Watch, observer_seat
from signaling.writer import MemoRow, RoomWriter

log = structlog.get_logger("tsunagu.rooms")


class RoomStore(KeptStore, Protocol):
    """What the home node stores and looks up for its rooms (``signaling.rooms.DatabaseRoomStore``)."""

    async def find_document(self, room_id: str, document_id: int) -> DocumentInfo | None: ...

    async def load_memo(self, room_id: str) -> list[bytes]:
        """The room's stored memo updates, oldest first."""
        ...

    async def shown_page(self, room_id: str) -> tuple[DocumentInfo, int] | None:
        """The document on screen in the room and its page, as stored (its open page view); None when none
        is, or it may no longer be shown."""
        ...


RESYNC_RETRY_SECONDS = 1.0  # how often a home tries again to tell other nodes' sockets to re-sync (_lost)
_client_messages: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_MEMO_TYPES = ("memo.sync", "memo.awareness")  # the messages the fast path takes (see RoomHub._quick)


def _item(message: ServerMessage, to: str | None, exclude: str | None) -> dict[str, Any]:
    """A frame for the room's sockets, serialized once for all of them; an error frame stays a dict, for
    each socket to translate its message id."""
    if isinstance(message, ErrorFrame):
        return {"send": message.model_dump(mode="json"), "to": to, "exclude": exclude}
    if type(message) is MemoSyncOut:  # a keystroke's copy; its data is base64, nothing to escape
        return {"text": _MEMO_SYNC_JSON % message.data, "to": to, "exclude": exclude}
    return {"text": message.model_dump_json(), "to": to, "exclude": exclude}


_MEMO_SYNC_JSON = '{"type":"memo.sync","data":"%s"}'


def _in(room_id: str) -> str:
    return f"room:{room_id}:in"


def _out(room_id: str) -> str:
    return f"room:{room_id}:out"


def _still_wanted() -> None:
    """Raise CancelledError when the running task is being cancelled though no CancelledError reached it:
    on Python 3.11 redis-py can turn a cancellation into a connection or timeout error, which a room that
    goes on without Redis catches, and the home task would then outlive ``hub.aclose`` for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


class RoomHub:
    def __init__(
        self,
        broker: Broker,
        store: RoomStore,
        clock: Clock = wall_clock,
        grace: float = DEFAULT_GRACE_SECONDS,
        media: MediaRelay | None = None,
        memo_max_characters: int = memo_cap.DEFAULT_MAX_CHARACTERS,
        recorder: RoomRecorder | None = None,
    ) -> None:
        self.broker = broker
        self.memo_max_characters = memo_max_characters
        self.media = HomeMedia(media, recorder, clock, self._reply, self._post_soon)
        # The local fast path: for a room homed here, sockets on this node exchange events with the home
        # through in-process queues (no JSON copies, no second validation); the broker carries only what
        # concerns other nodes. ``_remote`` holds the room's connections on other nodes.
        self.node = uuid.uuid4().hex
        self._inboxes: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._local: dict[str, dict[str, QueueSubscription]] = {}
        self._remote: dict[str, set[str]] = {}
        self.store = store
        self.clock = clock
        self.grace = grace
        self._homes: dict[str, asyncio.Task[None]] = {}
        self._rooms: dict[str, Room] = {}
        self._busy: set[str] = set()  # rooms whose home task is in the middle of an event
        self._gapped: set[str] = set()  # rooms whose frames to other nodes were lost (Redis away)
        self.handled_inline = 0  # memo messages taken by the fast path (for tests and metrics)
        self.resync_retry = RESYNC_RETRY_SECONDS
        # Page views and memo updates are stored in order, off the path of the frames people wait for.
        self.writer = RoomWriter(store)

    # Home side

    def is_home(self, room_id: str) -> bool:
        return room_id in self._homes

    async def open(
        self,
        room_id: str,
        connect_id: str,
        state: RoomState = RoomState.WAITING,
        recording: bool = False,
        rehome: bool = False,
    ) -> None:
        """Make this node the room's home. Idempotent; returns once the room listens for events.
        ``recording``: the host's 「この商談を録画する（レコログ）」 switch (recording starts with the first
        media). ``rehome``: the room had another home, which died: its sockets on every node are asked to
        connect again (what they told the dead home is lost)."""
        if room_id in self._homes or state == RoomState.ENDED:
            return
        # The memo as stored so far (after a restart, everything typed before it), and for a room that had
        # another home the document on screen, where it was: both sides land on that page again.
        updates = await self.store.load_memo(room_id)
        shown = await self.store.shown_page(room_id) if rehome else None
        if room_id in self._homes:
            return
        subscription = await self.broker.consume(_in(room_id))
        if room_id in self._homes:  # opened meanwhile by another connection
            await subscription.close()
            return
        room = Room(
            room_id,
            connect_id,
            state=state,
            grace=self.grace,
            memo=SharedMemo(updates),
            memo_max_characters=self.memo_max_characters,
            home=uuid.uuid4().hex,
        )
        room.recording.armed = recording
        if shown is not None:
            room.shared = SharedDocument(info=shown[0], page=shown[1])
        if recording:
            self.media.arm(room_id)
        self.writer.opened(room_id, len(updates))
        self._rooms[room_id] = room
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=DEFAULT_QUEUE_SIZE)
        self._inboxes[room_id], self._local[room_id], self._remote[room_id] = inbox, {}, set()
        self._homes[room_id] = asyncio.create_task(
            self._run_home(room, subscription, inbox), name=f"room-{room_id}"
        )
        if rehome:
            await self.broker.publish(_out(room_id), {"rehomed": True})

    async def poke(self, room_id: str) -> None:
        """Ask the home to look at the clock now (tests move a manual clock, then poke)."""
        await self.post(room_id, {"event": "tick"})

    async def announce_file(self, room_id: str, file: FileInfo) -> None:
        """Tell a room, wherever its home is, that one of its files is ready."""
        await self.post(room_id, {"event": "file", "file": file.model_dump(mode="json")})

    async def post(self, room_id: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to the room's home: into its inbox when it is here, else over the broker."""
        inbox = self._inboxes.get(room_id)
        if inbox is not None:
            await inbox.put(event)  # a full inbox makes the sender wait (backpressure), as a socket would
            return
        message = event.get("message")
        if message is not None and not isinstance(message, dict):
            event = {**event, "message": message.model_dump()}
        # Reliable: stored in the room's queue before this returns (Unavailable when it cannot be).
        await self.broker.push(_in(room_id), event, key=uuid.uuid4().hex)

    def _post_soon(self, room_id: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to a room homed here from a callback on the loop (the relay's, the recorder's)."""
        inbox = self._inboxes.get(room_id)
        if inbox is not None:
            with contextlib.suppress(asyncio.QueueFull):  # a flooded room: the event is not worth a wait
                inbox.put_nowait(event)

    def room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    async def _run_home(
        self, room: Room, subscription: Subscription, inbox: asyncio.Queue[dict[str, Any]]
    ) -> None:
        pump = asyncio.create_task(self._pump(room.id, subscription, inbox), name=f"room-{room.id}-broker")
        try:
            async with subscription:
                ticked: float | None = None  # the clock's reading at the last tick
                while room.state != RoomState.ENDED:
                    _still_wanted()
                    deadline, now = room.next_deadline(), self.clock()
                    # Wake at least once a second while someone is reconnecting, to end their grace on time,
                    # and when a held pointer position is due. A deadline a tick at this very reading did
                    # not clear means the clock stands still (a test's manual clock): wait, do not spin.
                    if deadline is None:
                        timeout = None
                    elif deadline <= now and ticked == now:
                        timeout = 1.0
                    else:
                        timeout = min(1.0, max(0.0, deadline - now))
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns an event that arrives
                    # together with a cancellation and drops the cancellation, and this loop then never ends
                    # (hub.aclose waited on it for ever when a room was left open with both seats taken).
                    try:
                        async with asyncio.timeout(timeout):
                            event = await inbox.get()
                    except TimeoutError:
                        event = {"event": "tick"}
                    if event.get("event") == "tick":
                        ticked = self.clock()
                    self._busy.add(room.id)
                    try:
                        if event.get("event") == "resync":
                            await self._resync(room.id)
                        else:
                            await self._apply(room, self._handle(room, event))
                    finally:
                        self._busy.discard(room.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("room failed; ending it", room=room.id)
            with contextlib.suppress(Exception):
                await self._apply(room, room.abort(self.clock()))
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            if room.state == RoomState.ENDED:
                await self.broker.discard(_in(room.id))
            self._homes.pop(room.id, None)
            self._rooms.pop(room.id, None)
            self._busy.discard(room.id)
            self._gapped.discard(room.id)
            self.writer.closed(room.id)
            self._inboxes.pop(room.id, None)
            self._remote.pop(room.id, None)
            for socket in self._local.pop(room.id, {}).values():
                # Its writer still sends what is queued (ended, a close code); a socket left without a close
                # code then closes with 4503: nobody is home.
                socket.finish()
            await self.media.close_room(room.id)

    async def _pump(
        self, room_id: str, subscription: Subscription, inbox: asyncio.Queue[dict[str, Any]]
    ) -> None:
        """Events from other nodes into the home's inbox, memo messages through the fast path when it is
        free (:meth:`_quick`); a lost subscription ends the room (see _handle)."""
        async for event in subscription:
            try:
                quick = self._quick_from_afar(room_id, event)
            except Exception:
                log.exception("room.fast_path_failed", room=room_id)
                break  # the room ends, as it would had its home task failed on this event
            if not quick:
                await inbox.put(event)
        await inbox.put({"event": "lost"})

    def _quick_from_afar(self, room_id: str, event: dict[str, Any]) -> bool:
        """A memo message from a socket on another node through the fast path; False when it is not one
        or the path is not free (the home task handles it then, validating it as it does any message)."""
        message = event.get("message")
        if (
            event.get("event") != "message"
            or not isinstance(message, dict)
            or message.get("type") not in _MEMO_TYPES
            or room_id in self._busy
        ):
            return False
        try:  # what crossed the wire is validated again, as the home task would
            checked = _client_messages.validate_python(message)
            role = Role(event["role"])
        except (ValidationError, ValueError, KeyError):
            return False
        return self._quick(room_id, role, str(event["connection"]), checked)

    def _handle(self, room: Room, event: dict[str, Any]) -> list[Effect]:
        now = self.clock()
        kind = event.get("event")
        if kind == "tick":
            return room.tick(now)
        if kind == "file":
            # JSON from the broker says "guest", not Role.GUEST: validate it as JSON data, not strictly.
            return room.file_shared(FileInfo.model_validate(event["file"], strict=False))
        if kind == "lost":
            raise RuntimeError("the room's broker subscription was dropped")
        if kind == "media_started":
            return room.media_started(now)
        if kind == "recording_failed":
            return room.recording_failed(str(event["reason"]), now)
        if kind == "settle":
            event["done"].set_result(None)  # every event before this one is handled
            return []
        if kind == "effects":  # the rest of an event handled inline (see inline)
            effects: list[Effect] = event["effects"]
            return effects
        if kind in ("observe", "unobserve", "observer_offer"):
            return self._observer_event(room, kind, event, now)
        role, connection = Role(event["role"]), str(event["connection"])
        try:
            if kind == "connect":
                # A socket of this node that subscribed before the room was homed here hears the broker.
                if event.get("node") != self.node or connection not in self._local[room.id]:
                    self._remote[room.id].add(connection)
                return room.connect(role, connection, now)
            if kind == "disconnect":
                self._remote[room.id].discard(connection)
                return room.disconnect(role, connection, now)
            if kind == "message":
                message = event["message"]
                if isinstance(message, dict):  # from another node: validate what crossed the wire
                    message = _client_messages.validate_python(message)
                return room.receive(role, connection, message, now)
        except RoomError as refused:
            return [Close(connection, refused.code)]
        log.warning("unknown room event", room=room.id, kind=kind)
        return room.tick(now)

    def _observer_event(self, room: Room, kind: str, event: dict[str, Any], now: float) -> list[Effect]:
        """A manager sitting in: joins, leaves, or offers its receive-only media (signaling/sit_in.py)."""
        connection = str(event["connection"])
        if kind == "unobserve":
            self._remote[room.id].discard(connection)
            return room.unobserve(connection)
        if kind == "observer_offer":
            return room.observer_offer(connection, int(event["user"]), str(event["sdp"]))
        if event.get("node") != self.node or connection not in self._local[room.id]:
            self._remote[room.id].add(connection)
        try:
            return room.observe(connection, int(event["user"]), bool(event["announce"]), now)
        except RoomError as refused:
            return [Close(connection, refused.code)]

    async def _apply(self, room: Room, effects: list[Effect]) -> None:
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            match effect:
                case Send(message=message, to=to, exclude=exclude):
                    await self._deliver(room.id, _item(message, to, exclude), to, exclude)
                case Close(connection=connection, code=code):
                    await self._deliver(room.id, {"close": int(code), "connection": connection}, connection)
                case StateChanged() | PageShown() | MemoUpdated() | MemoFinal() | Happened():
                    await keep(self.writer, self.store, room.id, effect, self.clock())
                case ResolveDocument(document_id=document_id, connection=connection):
                    try:
                        info = await self.store.find_document(room.id, document_id)
                    except Exception as exc:
                        log.warning(
                            "room.document_lookup_failed", room=room.id, error=repr(exc.__cause__ or exc)
                        )
                        pending[:0] = room.document_lookup_failed(connection)
                    else:
                        pending[:0] = room.document_found(info, connection, self.clock())
                case Negotiate(role=role, connection=connection, sdp=sdp):
                    self.media.negotiate(room.id, role.value, connection, sdp)
                case Watch(connection=connection, sdp=sdp):
                    self.media.negotiate(room.id, observer_seat(connection), connection, sdp, OBSERVED)
                case MediaLeave(role=role):
                    await self.media.leave(room.id, role.value)
                case StartRecording():
                    pending[:0] = await self.media.start_recording(room)
                case StopRecording():
                    await self.media.stop_recording(room.id)
                case StopWatching(connection=connection):
                    await self.media.leave(room.id, observer_seat(connection))

    async def _reply(self, room_id: str, connection: str, message: ServerMessage) -> None:
        """An answer to one socket of the room (``HomeMedia``'s to an offer)."""
        await self._deliver(room_id, _item(message, connection, None), connection)

    async def _deliver(
        self, room_id: str, item: dict[str, Any], to: str | None, exclude: str | None = None
    ) -> None:
        """Give ``item`` to the room's sockets on this node, and to the broker if it concerns another node."""
        local = self._deliver_here(room_id, item, to, exclude)
        if self._concerns_others(room_id, local, to, exclude):
            try:
                if room_id in self._gapped:  # frames were lost before this one: the sockets re-sync first
                    await self.broker.publish(_out(room_id), RESUMED)
                    self._gapped.discard(room_id)
                await self.broker.publish(_out(room_id), item)
            except Unavailable:
                _still_wanted()  # redis-py may have turned our cancellation into the error it raised
                # Redis is away: the room goes on for the sockets here, and those on other nodes are told
                # to re-sync (see _lost).
                self._lost(room_id)

    def _concerns_others(
        self, room_id: str, local: dict[str, QueueSubscription], to: str | None, exclude: str | None
    ) -> bool:
        """Whether a frame for ``to`` (or everyone but ``exclude``) must go to sockets on other nodes."""
        remote = self._remote.get(room_id)
        return (
            remote is None
            or (to is None and bool(remote - {exclude}))
            or (to is not None and to not in local)
        )

    def _deliver_here(
        self, room_id: str, item: dict[str, Any], to: str | None, exclude: str | None
    ) -> dict[str, QueueSubscription]:
        """Give ``item`` to the room's sockets on this node (without waiting); returns those sockets."""
        local = self._local.get(room_id, {})
        for connection, socket in list(local.items()):
            if (to is None or to == connection) and connection != exclude and not socket.offer(item):
                # Too far behind (a stalled socket): drop it like the broker would; the browser reconnects.
                socket.end(dropped=True)
                local.pop(connection, None)
                log.warning("room.socket_dropped", room=room_id)
        return local

    def inline(self, participant: Participant, message: ClientMessage) -> bool:
        """The memo's fast path for a socket on this node (see :meth:`_quick`)."""
        return self._quick(participant.room_id, participant.role, participant.connection, message)

    def _quick(self, room_id: str, role: Role, connection: str, message: ClientMessage) -> bool:
        """The memo's fast path: handle a memo message right away, in the task that has it (a socket's on
        this node, or the pump's for one from another node), when the room is homed here and idle — nothing
        waiting in its inbox, no event under way — and no frame to another node was lost (Redis away). Then
        nothing can come before it, the room is changed at once (the state machine is synchronous) and what
        it says goes straight into the local sockets' queues, the broker's (``publish_nowait``: in order with
        the home task's publishes) and the writer's queue, none of which waits. False when it must go
        through the home task instead."""
        room = self._rooms.get(room_id)
        if room is None or not isinstance(message, MemoSync | MemoAwareness) or not self.quick_now(room_id):
            return False
        self._carry_out_now(room_id, room.receive(role, connection, message, self.clock()))
        return True

    def quick_memo(self, room_id: str, role: Role, connection: str, data: str, awareness: bool) -> None:
        """:meth:`_quick` of a ``memo.sync`` (or ``memo.awareness``) message's data, for a room
        :meth:`quick_now` has just found ready."""
        room = self._rooms[room_id]
        receive = room.receive_awareness if awareness else room.receive_memo
        self._carry_out_now(room_id, receive(role, connection, data, self.clock()))

    def _carry_out_now(self, room_id: str, effects: list[Effect]) -> None:
        """What the room said to a memo message, carried out without waiting (see :meth:`_quick`)."""
        self.handled_inline += 1
        for i, effect in enumerate(effects):
            match effect:
                case Send(message=frame, to=to, exclude=exclude):
                    self._deliver_soon(room_id, _item(frame, to, exclude), to, exclude)
                case Close(connection=closed, code=code):
                    self._deliver_soon(room_id, {"close": int(code), "connection": closed}, closed)
                case MemoUpdated(update=update, author=author, at=at):
                    self.writer.offer(MemoRow(room_id, update, author.value, at))
                case _:  # not expected from a memo message; the home task carries out the rest, in order
                    self._inboxes[room_id].put_nowait({"event": "effects", "effects": effects[i:]})
                    break

    def quick_now(self, room_id: str) -> bool:
        """Whether :meth:`_quick` would take a memo message of ``room_id`` now."""
        return (
            room_id in self._rooms
            and room_id not in self._busy
            and room_id not in self._gapped
            and self._inboxes[room_id].empty()
            and self.writer.has_room()
        )

    def _deliver_soon(
        self, room_id: str, item: dict[str, Any], to: str | None, exclude: str | None = None
    ) -> None:
        """:meth:`_deliver` without waiting: a frame lost on the way to another node marks the room gapped,
        and the next frame through the home task tells those sockets to re-sync first."""
        local = self._deliver_here(room_id, item, to, exclude)
        if not self._concerns_others(room_id, local, to, exclude):
            return
        try:
            sent = self.broker.publish_nowait(_out(room_id), item)
        except Unavailable:
            self._lost(room_id)
            return
        sent.add_done_callback(
            lambda sent: self._lost(room_id) if sent.cancelled() or sent.exception() else None
        )

    def _lost(self, room_id: str) -> None:
        """Frames of a room homed here were lost on the way to other nodes: their sockets must re-sync. They
        are told (RESUMED) before the next frame the home sends them, and by the home task at once, then every
        ``resync_retry`` seconds until it gets through: a frame lost in a batch that failed while later ones
        went on (signaling/redis_batch.py) would otherwise leave them short until somebody types again."""
        if room_id in self._homes and room_id not in self._gapped:
            log.warning("room.frames_lost", room=room_id)
            self._gapped.add(room_id)
            self._post_soon(room_id, {"event": "resync"})

    async def _resync(self, room_id: str) -> None:
        """The home task's answer to lost frames (see :meth:`_lost`)."""
        if room_id not in self._gapped:
            return  # a frame since has told them
        try:
            await self.broker.publish(_out(room_id), RESUMED)
        except Unavailable:
            _still_wanted()
            asyncio.get_running_loop().call_later(
                self.resync_retry, self._post_soon, room_id, {"event": "resync"}
            )
            return
        self._gapped.discard(room_id)

    async def flush(self) -> None:
        """Wait until every page view and memo update so far is stored."""
        await self.writer.flush()

    async def settle(self, room_id: str) -> None:
        """Wait until the room's home (on this node) has handled every event posted to it so far, and the
        writer has stored what they gave it: an explicit drain for tests and shutdown, instead of a sleep."""
        inbox, home = self._inboxes.get(room_id), self._homes.get(room_id)
        if inbox is not None and home is not None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await inbox.put({"event": "settle", "done": done})
            await asyncio.wait({done, home}, return_when=asyncio.FIRST_COMPLETED)  # or the room ended
            done.cancel()
        await self.writer.flush()

    # Connection side

    @contextlib.asynccontextmanager
    async def participate(self, room_id: str, role: Role) -> AsyncIterator[Participant]:
        """Join ``room_id`` as ``role`` from this node; leaving the block reports the disconnect."""
        connection = uuid.uuid4().hex
        subscription = await self._subscribe(room_id, connection)
        participant = Participant(self, room_id, role, connection, subscription)
        try:
            await self.to_home(room_id, "connect", participant)
            yield participant
        finally:
            await participant.disconnected()

    @contextlib.asynccontextmanager
    async def sit_in(self, room_id: str, user_id: int, announce: bool) -> AsyncIterator[Watcher]:
        """Watch ``room_id`` read-only from this node (a manager sitting in; ``announce``: show the
        participants 「上長が同席中」); leaving the block stops watching."""
        connection = uuid.uuid4().hex
        subscription = await self._subscribe(room_id, connection)
        watcher = Watcher(self, room_id, connection, subscription, user_id, announce)
        try:
            await watcher.observe()
            yield watcher
        finally:
            await watcher.disconnected()

    async def sit_in_offer(self, room_id: str, connection: str, user_id: int, sdp: str) -> None:
        """A sitting-in manager's media offer, for its connection; the answer comes on that connection."""
        event = {"event": "observer_offer", "connection": connection, "user": user_id, "sdp": sdp}
        await self.post(room_id, event)

    async def _subscribe(self, room_id: str, connection: str) -> Subscription:
        """Frames for a new socket of ``room_id``: straight from the home when it is here, else the broker."""
        local = self._local.get(room_id)
        if local is None:
            return await self.broker.subscribe(_out(room_id))

        async def release(_: QueueSubscription) -> None:
            local.pop(connection, None)

        local[connection] = subscription = QueueSubscription(_out(room_id), DEFAULT_QUEUE_SIZE, release)
        return subscription

    async def to_home(
        self, room_id: str, kind: str, participant: Participant, message: ClientMessage | None = None
    ) -> None:
        event: dict[str, Any] = {
            "event": kind,
            "role": participant.role.value,
            "connection": participant.connection,
            "node": self.node,
        }
        if message is not None:
            event["message"] = message
        await self.post(room_id, event)

    def homed_rooms(self) -> list[str]:
        return list(self._homes)

    async def release(self, room_id: str) -> None:
        """Stop being the room's home without ending it (another node adopted it): its sockets here close
        with 4503 and reconnect to the new home."""
        task = self._homes.get(room_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def rooms_homed(self) -> int:
        """Rooms whose home is this node (its load, for the node registry)."""
        return len(self._homes)

    async def aclose(self) -> None:
        tasks = list(self._homes.values())
        for task in tasks:
            task.cancel()
        await self.media.aclose()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.aclose()
