"""A room as a state machine: events in, effects out, no I/O (the way ``websockets`` keeps its protocol).

The home node feeds a :class:`Room` with connects, disconnects, validated client messages and clock ticks,
and carries out the :data:`Effect` values it returns: frames to send, connections to close, state to store.
Tests drive it directly, with no sockets and a hand-moved clock.

Rules (seed 004, 終了, plus a rejoin window bellFace lacks):
- The room is ``waiting`` until both sides have connected once, then ``active``; ``ended`` is final.
- The host's 終了 ends the room for both. The guest's 終了 makes the guest ``left``; the host stays and is
  told. A guest who pressed 終了 may come back (「もう一度接続する」) within ``grace`` seconds of
  leaving, with no new number; after that it needs a new one (``REJOIN_EXPIRED``).
- A connection that drops without 終了 is ``reconnecting``; the same participant may reconnect within
  ``grace`` seconds (default 5 minutes) with no new number. After that it is ``left`` for good; a host that
  does not come back ends the room.
- A second connection for the same seat replaces the first (a reloaded tab), which is closed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from core.errors import N_
from recordings.limit import (
    HostNotice,
    RecordingEffect,
    RecordingRules,
    RecordingShown,
    Refused,
    StartRecording,
    StopRecording,
)
from signaling import memo_cap
from signaling.call_media import HOST_ONLY, CallMedia, MediaEffect, MediaLeave, Negotiate, Reply
from signaling.memo import STEP2 as MEMO_STATE
from signaling.memo import UPDATE as MEMO_UPDATE
from signaling.memo import (
    BadMemoData,
    MemoRefused,
    OutOfStep,
    SharedMemo,
    check_awareness,
    decode,
    encode,
    parse_sync_message,
    sync_message,
)
from signaling.models import RoomState
from signaling.pointer import PointerMove, PointerRelay
from signaling.protocol import (
    CameraReply,
    CameraRequest,
    ClientMessage,
    CloseCode,
    CloseDocument,
    DocumentInfo,
    DocumentScrolled,
    DocumentState,
    End,
    Ended,
    ErrorCode,
    ErrorFrame,
    FileInfo,
    FileShared,
    GuestControl,
    HighQuality,
    MediaOffer,
    MediaState,
    MemoAwareness,
    MemoSync,
    MemoSyncOut,
    OpenDocument,
    PeerMedia,
    Peers,
    Ping,
    Pointer,
    PointerAt,
    PointerMoved,
    Pong,
    Presence,
    PresenceChanged,
    RecordingNotice,
    RecordingSeen,
    RecordingState,
    RecordingSwitch,
    Role,
    RoomInfo,
    RoomStateChanged,
    ScrollDocument,
    ServerMessage,
    SitInChanged,
    SitInWelcome,
    TurnPage,
    VideoStatus,
    Welcome,
    memo_awareness_out,
    memo_sync_out,
)
from signaling.sit_in import SittingIn, StopWatching, Watch

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


@dataclass(frozen=True)
class PageShown:
    """From ``at`` on, ``page`` of ``document_id`` is on screen; ``document_id`` None means no document is.

    Stored as the meeting record's page views (dwell per page).
    """

    document_id: int | None
    page: int
    at: float
    # True for the first page of a newly opened document: stored before the frames go out, because the
    # stored view is what lets the guest's browser fetch the document's page images.
    opens: bool = False


@dataclass(frozen=True)
class ResolveDocument:
    """Look ``document_id`` up in the room's org library and feed it back with :meth:`Room.document_found`."""

    document_id: int
    connection: str


@dataclass(frozen=True)
class MemoUpdated:
    """共有メモ: ``author`` changed the memo with ``update`` (a Yjs update) at ``at``; store it, in order."""

    update: bytes
    author: Role
    at: float


@dataclass(frozen=True)
class MemoFinal:
    """The room ended: keep the memo's final plain text in the meeting record (商談記録)."""

    text: str


class EventKind(enum.StrEnum):
    """What a :class:`Happened` records on the meeting's timeline (besides what is stored elsewhere)."""

    RECORDING_STARTED = "recording_started"
    RECORDING_STOPPED = "recording_stopped"  # detail: the reason (host, limit, failed, ended)
    RECORDING_SEEN = "recording_seen"  # the guest's page said the meeting is recorded; detail: its device
    CAMERA = "camera"  # detail: "<role> <camera state>"
    SCREEN = "screen"  # detail: "<role> on|off"
    CAMERA_REQUEST = "camera_request"  # the host asked the guest's camera to stop/start; detail: action
    VIDEO = "video"  # whether video works for a side; detail: "<role> available" or "<role> <VideoProblem>"


@dataclass(frozen=True)
class Happened:
    """Keep ``kind`` (with ``detail``) at ``at`` on the meeting's timeline."""

    kind: EventKind
    detail: str
    at: float


Effect = (
    Send
    | Close
    | StateChanged
    | PageShown
    | ResolveDocument
    | MemoUpdated
    | MemoFinal
    | Negotiate
    | MediaLeave
    | Watch
    | StopWatching
    | Happened
    | StartRecording
    | StopRecording
)

NOT_ALLOWED = HOST_ONLY  # one message for everything only the host may do
NO_SUCH_DOCUMENT = N_("This document cannot be shown. It may still be processing or have been deleted.")
NO_DOCUMENT_OPEN = N_("No document is open.")
LOOKUP_FAILED = N_("The document could not be opened just now. Please try again in a moment.")
BAD_MEMO = N_("The message could not be understood.")  # the same words as any other bad frame
MEMO_FULL = N_(
    "The shared memo is full, so what you typed last was not shared. Shorten it, then reload the page."
)


@dataclass
class SharedDocument:
    """The document both sides see, and where."""

    info: DocumentInfo | None = None
    page: int = 1
    position: float = 0.0
    guest_control: bool = False

    def state(self) -> DocumentState:
        return DocumentState(
            document=self.info, page=self.page, position=self.position, guest_control=self.guest_control
        )


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
    # A guest that left with 終了 may connect again until then; None once left for good.
    rejoin_until: float | None = None


@dataclass
class Room:
    id: str
    connect_id: str
    state: RoomState = RoomState.WAITING
    grace: float = DEFAULT_GRACE_SECONDS
    seats: dict[Role, Seat] = field(default_factory=lambda: {Role.HOST: Seat(), Role.GUEST: Seat()})
    shared: SharedDocument = field(default_factory=SharedDocument)
    memo: SharedMemo = field(default_factory=SharedMemo)
    media: CallMedia = field(default_factory=CallMedia)
    pointer: PointerRelay = field(default_factory=PointerRelay)
    memo_max_characters: int = memo_cap.DEFAULT_MAX_CHARACTERS
    sit_in: SittingIn = field(default_factory=SittingIn)
    recording: RecordingRules = field(default_factory=RecordingRules)
    home: str = ""  # this home's incarnation: a new one (a restarted or adopting node) relays no video yet

    # Inputs

    def connect(self, role: Role, connection: str, now: float) -> list[Effect]:
        seat = self.seats[role]
        if self.state == RoomState.ENDED:
            raise RoomError(CloseCode.ROOM_ENDED)
        if seat.presence == Presence.LEFT:
            if seat.rejoin_until is None:  # left for good (did not come back in time)
                raise RoomError(CloseCode.LEFT)
            if now >= seat.rejoin_until:  # pressed 終了, and comes back too late
                raise RoomError(CloseCode.REJOIN_EXPIRED)
        if seat.presence == Presence.RECONNECTING and now - seat.since >= self.grace:
            raise RoomError(CloseCode.REJOIN_EXPIRED)
        effects: list[Effect] = []
        if seat.connection is not None and seat.connection != connection:  # the same one: asked again
            effects.append(Close(seat.connection, CloseCode.REPLACED))
        seat.connection, seat.presence, seat.since = connection, Presence.CONNECTED, now
        seat.rejoin_until = None
        if self.state == RoomState.WAITING and all(
            s.presence != Presence.ABSENT for s in self.seats.values()
        ):
            self.state = RoomState.ACTIVE
            effects.append(StateChanged(RoomState.ACTIVE))
            effects.append(Send(RoomStateChanged(state=self.state), exclude=connection))
        effects.append(Send(self._welcome(role), to=connection))
        # Someone who (re)connects mid-document lands on the current page.
        effects.append(Send(self.shared.state(), to=connection))
        effects.append(Send(PresenceChanged(role=role, presence=Presence.CONNECTED), exclude=connection))
        effects.extend(self._media(self.media.connected(role)))
        if self.recording.armed:  # before the guest's camera starts, its page says it is recorded
            effects.append(Send(self._recording_state(now), to=connection))
        if self.sit_in.shown:
            effects.append(Send(SitInChanged(present=True), to=connection))
        return effects

    def disconnect(self, role: Role, connection: str, now: float) -> list[Effect]:
        """The socket closed without 終了. Ignored for a connection that was already replaced."""
        seat = self.seats[role]
        if seat.connection != connection or self.state == RoomState.ENDED:
            return []
        seat.connection, seat.presence, seat.since = None, Presence.RECONNECTING, now
        return [Send(PresenceChanged(role=role, presence=Presence.RECONNECTING))]

    def receive(self, role: Role, connection: str, message: ClientMessage, now: float) -> list[Effect]:
        # A keystroke and its caret, many a second: not through the match below.
        if isinstance(message, MemoSync):
            return self.receive_memo(role, connection, message.data, now)
        if isinstance(message, MemoAwareness):
            return self.receive_awareness(role, connection, message.data, now)
        if (closed := self._closed(role, connection)) is not None:
            return [closed]
        match message:
            case Ping():
                return [Send(Pong(), to=connection)]
            case End() if role == Role.HOST:
                return self._end("host", now)
            case End():
                return self._guest_leaves(now)
            case OpenDocument() | GuestControl() if role != Role.HOST:
                return [self._error(connection, NOT_ALLOWED)]
            case OpenDocument(document_id=document_id):
                return [ResolveDocument(document_id, connection)]
            case GuestControl(allowed=allowed):
                self.shared.guest_control = allowed
                if not allowed:
                    self.pointer.forget(Role.GUEST)
                return [Send(self.shared.state())]
            case CloseDocument() | TurnPage() | ScrollDocument() | Pointer() if not self._may_steer(role):
                return [self._error(connection, NOT_ALLOWED)]
            case CloseDocument():
                return self._close_document(now)
            case TurnPage(page=page):
                return self._turn(page, connection, now)
            case ScrollDocument(position=position, page=page):
                return self._scroll(role, position, page, connection, now)
            case Pointer(at=at):
                return self._point(role, at, now)
            case (
                MediaOffer() | MediaState() | VideoStatus() | CameraRequest() | CameraReply() | HighQuality()
            ):
                guest_connected = self.seats[Role.GUEST].connection is not None
                effects = self._media_events(role, message, now)
                effects.extend(self._media(self.media.receive(role, connection, message, guest_connected)))
                return effects
            case RecordingSwitch() if role != Role.HOST:
                return [self._error(connection, NOT_ALLOWED)]
            case RecordingSwitch(on=on):
                return self._recording(self.recording.host_switch(on, now), now)
            case RecordingSeen() if role != Role.GUEST:
                return [self._error(connection, NOT_ALLOWED)]
            case RecordingSeen(device=device):
                return [Happened(EventKind.RECORDING_SEEN, device, now)]
        raise AssertionError(f"unhandled message {message!r}")  # pragma: no cover - the union is exhaustive

    def observe(self, connection: str, user_id: int, announce: bool, now: float) -> list[Effect]:
        """A manager sits in (read-only, signaling/sit_in.py): it gets what the participants see; they are
        told when ``announce`` (the org's setting) says so."""
        if self.state == RoomState.ENDED:
            raise RoomError(CloseCode.ROOM_ENDED)
        tell = self.sit_in.join(connection, user_id, announce, now)
        welcome = SitInWelcome(
            room=RoomInfo(id=self.id, state=self.state, connect_id=self.connect_id),
            peers=Peers(host=self.seats[Role.HOST].presence, guest=self.seats[Role.GUEST].presence),
            connection=connection,
        )
        memo = encode(sync_message(MEMO_STATE, self.memo.state_update()))  # the whole memo as it is now
        effects: list[Effect] = [
            Send(welcome, to=connection),
            Send(self.shared.state(), to=connection),
            Send(MemoSyncOut(data=memo), to=connection),
        ]
        effects.extend(Send(peer, to=connection) for peer in self.media.peers())
        if self.recording.armed:
            effects.append(Send(self._recording_state(now), to=connection))
        if tell:
            effects.extend(self._tell_seats(True))
        return effects

    def unobserve(self, connection: str) -> list[Effect]:
        """A manager stopped sitting in (its socket closed)."""
        if connection not in self.sit_in.observers:
            return []
        effects: list[Effect] = [StopWatching(connection)]
        if self.sit_in.leave(connection) and self.state != RoomState.ENDED:
            effects.extend(self._tell_seats(False))
        return effects

    def observer_offer(self, connection: str, user_id: int, sdp: str) -> list[Effect]:
        """The sitting-in manager's media offer (over HTTP: its socket sends nothing)."""
        return [] if self.state == RoomState.ENDED else list(self.sit_in.offer(connection, user_id, sdp))

    def file_shared(self, info: FileInfo) -> list[Effect]:
        """A file sent in this room is stored: tell both sides (the receiver gets its download prompt)."""
        return [] if self.state == RoomState.ENDED else [Send(FileShared(file=info))]

    def document_found(self, info: DocumentInfo | None, connection: str, now: float) -> list[Effect]:
        """The answer to :class:`ResolveDocument`: show page 1 of ``info``, or tell the host it cannot."""
        if self.state == RoomState.ENDED:
            return []
        if info is None:
            return [self._error(connection, NO_SUCH_DOCUMENT)]
        self.shared = SharedDocument(info=info, guest_control=self.shared.guest_control)
        self.pointer.forget()
        return [PageShown(info.id, 1, now, opens=True), Send(self.shared.state())]

    def document_lookup_failed(self, connection: str) -> list[Effect]:
        """:class:`ResolveDocument` got no answer (the library is unreachable): say so, change nothing."""
        if self.state == RoomState.ENDED:
            return []
        return [Send(ErrorFrame(code=ErrorCode.UNAVAILABLE, message=LOOKUP_FAILED), to=connection)]

    def media_started(self, now: float) -> list[Effect]:
        """The first media of the call reached the relay: a recording switched on starts now."""
        if self.state == RoomState.ENDED:
            return []
        return self._recording(self.recording.media_started(now), now)

    def recording_failed(self, reason: str, now: float) -> list[Effect]:
        """The recorder could not write (``reason``, a message id): the recording stops, the host is told,
        the call goes on."""
        if self.state == RoomState.ENDED:
            return []
        effects = self._recording(self.recording.failed(reason, now), now)
        host = self.seats[Role.HOST].connection
        if effects and host is not None:
            effects.append(Send(ErrorFrame(code=ErrorCode.RECORDING_FAILED, message=reason), to=host))
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Let time pass: seats that stayed away past the grace period have left; held pointer positions
        whose turn has come go out; the recording's limit."""
        effects: list[Effect] = []
        if self.state == RoomState.ENDED:
            return effects
        effects.extend(self._pointer_moves(self.pointer.tick(now)))
        effects.extend(self._recording(self.recording.tick(now), now))
        host = self.seats[Role.HOST]
        if host.presence == Presence.RECONNECTING and now - host.since >= self.grace:
            return self._end("timeout", now)
        guest = self.seats[Role.GUEST]
        if guest.presence == Presence.RECONNECTING and now - guest.since >= self.grace:
            guest.presence, guest.since = Presence.LEFT, now
            effects.append(Send(PresenceChanged(role=Role.GUEST, presence=Presence.LEFT)))
            effects.extend(self._media(self.media.left(Role.GUEST)))
        return effects

    def abort(self, now: float) -> list[Effect]:
        """End the room because something went wrong on the server (its home task failed)."""
        return [] if self.state == RoomState.ENDED else self._end("timeout", now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, if ever."""
        waiting = [s.since + self.grace for s in self.seats.values() if s.presence == Presence.RECONNECTING]
        pointer = self.pointer.next_deadline()
        if pointer is not None:
            waiting.append(pointer)
        recording = self.recording.next_deadline()
        if recording is not None:
            waiting.append(recording)
        return min(waiting) if waiting and self.state != RoomState.ENDED else None

    # Helpers

    def _welcome(self, role: Role) -> Welcome:
        return Welcome(
            role=role,
            room=RoomInfo(
                id=self.id, state=self.state, connect_id=self.connect_id if role == Role.HOST else ""
            ),
            peers=Peers(host=self.seats[Role.HOST].presence, guest=self.seats[Role.GUEST].presence),
            home=self.home,
        )

    def _media(self, effects: list[MediaEffect]) -> list[Effect]:
        """Address the media rules' replies to the seats' current connections (what a side sends also to
        the managers sitting in, who watch both sides)."""
        out: list[Effect] = []
        for effect in effects:
            if not isinstance(effect, Reply):
                out.append(effect)
                continue
            if effect.connection is not None:
                out.append(Send(effect.message, to=effect.connection))
            elif effect.role is not None and (seat := self.seats[effect.role]).connection is not None:
                out.append(Send(effect.message, to=seat.connection))
            if isinstance(effect.message, PeerMedia):
                out.extend(Send(effect.message, to=observer) for observer in self.sit_in.observers)
        return out

    def _recording_state(self, now: float) -> RecordingState:
        rules = self.recording
        return RecordingState(
            armed=rules.armed,
            recording=rules.running,
            stopped=rules.stopped_by,
            remaining=rules.remaining(now),
        )

    def _recording(self, effects: list[RecordingEffect], now: float) -> list[Effect]:
        """Carry the recording rules' effects out: 「録画中」 to everyone, notices to the host, and what the
        hub does (start/stop the recorder), each kept on the meeting's timeline."""
        out: list[Effect] = []
        host = self.seats[Role.HOST].connection
        for effect in effects:
            match effect:
                case RecordingShown():
                    state = self._recording_state(now)
                    out.append(Send(state))
                case HostNotice(notice=notice):
                    if host is not None:
                        out.append(Send(RecordingNotice(notice=notice.value), to=host))
                case Refused(message=message):
                    if host is not None:
                        out.append(self._error(host, message))
                case StartRecording(at=at):
                    out += [effect, Happened(EventKind.RECORDING_STARTED, "", at)]
                case StopRecording(at=at, reason=reason):
                    out += [effect, Happened(EventKind.RECORDING_STOPPED, reason.value, at)]
        return out

    def _media_events(self, role: Role, message: ClientMessage, now: float) -> list[Effect]:
        """Camera and screen share changes, the host's camera requests, and whether video works for a side
        (and why not), for the meeting's timeline."""
        match message:
            case MediaState(camera=camera, screen=screen):
                before = self.media.states.get(role)
                out: list[Effect] = []
                if before is None or before.camera != camera:
                    out.append(Happened(EventKind.CAMERA, f"{role.value} {camera}", now))
                if (before is not None and before.screen != screen) or (before is None and screen):
                    out.append(Happened(EventKind.SCREEN, f"{role.value} {'on' if screen else 'off'}", now))
                return out
            case CameraRequest(action=action) if role == Role.HOST and self.seats[Role.GUEST].connection:
                return [Happened(EventKind.CAMERA_REQUEST, action, now)]  # passed on, not refused
            case VideoStatus(available=available, reason=reason):
                told = self.media.video.get(role)  # what the other side was told last
                if told is None or (told.available, told.reason) != (available, reason):
                    return [Happened(EventKind.VIDEO, f"{role.value} {reason or 'available'}", now)]
        return []

    def _tell_seats(self, present: bool) -> list[Effect]:
        """「上長が同席中」 on or off, for the participants only."""
        return [
            Send(SitInChanged(present=present), to=seat.connection)
            for seat in self.seats.values()
            if seat.connection is not None
        ]

    def _may_steer(self, role: Role) -> bool:
        return role == Role.HOST or self.shared.guest_control

    @staticmethod
    def _bad(connection: str) -> Send:
        return Send(ErrorFrame(code=ErrorCode.BAD_MESSAGE, message=BAD_MEMO), to=connection)

    def _closed(self, role: Role, connection: str) -> Close | None:
        """The answer to a message from a connection that may no longer send: the room has ended, or the
        seat has a newer connection."""
        if self.state == RoomState.ENDED:
            return Close(connection, CloseCode.ROOM_ENDED)
        if self.seats[role].connection != connection:
            return Close(connection, CloseCode.REPLACED)
        return None

    def receive_awareness(self, role: Role, connection: str, data: str, now: float) -> list[Effect]:
        """:meth:`receive` of a ``memo.awareness`` message with this ``data`` (the caret; see
        :meth:`receive_memo`): relayed to the others, not stored."""
        if (closed := self._closed(role, connection)) is not None:
            return [closed]
        try:
            check_awareness(decode(data), role)  # garbage would make the other side's Yjs throw
        except BadMemoData:
            return [self._bad(connection)]
        return [Send(memo_awareness_out(data), exclude=connection)]

    def receive_memo(self, role: Role, connection: str, data: str, now: float) -> list[Effect]:
        """:meth:`receive` of a ``memo.sync`` message with this ``data`` (the socket's fast lane for
        keystrokes reads the data without building the message, signaling/protocol.py ``memo_sync_data``).

        Yjs does the merging: answer a step 1, apply a step 2 or update and pass it on to the others.
        A refused update changes nothing; its sender is told why, and brought back in step: after
        :class:`~signaling.memo.OutOfStep` by the server's step 1 (its answer brings what was missing), after
        the others by starting afresh from the server's memo (``memo.js`` does so on those codes)."""
        if (closed := self._closed(role, connection)) is not None:
            return [closed]
        try:
            message = decode(data)
            kind, payload = parse_sync_message(message)
            if not memo_cap.fits(self.memo, kind, payload, self.memo_max_characters):  # the length cap
                return [Send(ErrorFrame(code=ErrorCode.MEMO_FULL, message=MEMO_FULL), to=connection)]
            result = self.memo.receive(message, (kind, payload))
        except BadMemoData:
            return [self._bad(connection)]
        except MemoRefused as refused:
            effects: list[Effect] = [
                Send(ErrorFrame(code=refused.code, message=refused.message), to=connection)
            ]
            if isinstance(refused, OutOfStep):
                effects.append(Send(MemoSyncOut(data=encode(self.memo.step1())), to=connection))
            return effects
        effects = [Send(MemoSyncOut(data=encode(reply)), to=connection) for reply in result.reply]
        if result.update is not None:
            # An update message goes on as it came (it was read in full); a step 2 goes on as an update.
            forward = data if result.kind == MEMO_UPDATE else encode(sync_message(MEMO_UPDATE, result.update))
            # Built without validation: a keystroke's hot path, and ``forward`` is base64 we made or read.
            effects.append(Send(memo_sync_out(forward), exclude=connection))
            effects.append(MemoUpdated(result.update, role, now))
        return effects

    @staticmethod
    def _error(connection: str, message: str) -> Send:
        # ``message`` is a message id; the participant's connection translates it.
        return Send(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=message), to=connection)

    def _point(self, role: Role, at: PointerAt | None, now: float) -> list[Effect]:
        """A pointer position: dropped when no document is open or the page is not one of its pages (it
        crossed a close or a change on the wire), else relayed within the sender's budget."""
        info = self.shared.info
        if info is None or (at is not None and at.page > info.pages):
            return []
        return self._pointer_moves(self.pointer.receive(role, at, now))

    def _pointer_moves(self, moves: list[PointerMove]) -> list[Effect]:
        out: list[Effect] = []
        for move in moves:
            other = self.seats[Role.GUEST if move.by == Role.HOST else Role.HOST].connection
            if other is not None:
                out.append(Send(PointerMoved(at=move.at, by=move.by), to=other))
        return out

    def _close_document(self, now: float) -> list[Effect]:
        if self.shared.info is None:
            return []
        self.pointer.forget()
        self.shared = SharedDocument(guest_control=self.shared.guest_control)
        return [Send(self.shared.state()), PageShown(None, 0, now)]

    def _turn(self, page: int, connection: str, now: float) -> list[Effect]:
        info = self.shared.info
        if info is None:
            return [self._error(connection, NO_DOCUMENT_OPEN)]
        page = min(page, info.pages)
        if page == self.shared.page:
            return [Send(self.shared.state(), to=connection)]
        self.shared.page = page
        self.shared.position = (page - 1) / max(1, info.pages - 1) if info.kind == "vertical" else 0.0
        return [Send(self.shared.state()), PageShown(info.id, page, now)]

    def _scroll(self, role: Role, position: float, page: int, connection: str, now: float) -> list[Effect]:
        info = self.shared.info
        if info is None:
            return [self._error(connection, NO_DOCUMENT_OPEN)]
        page = min(page, info.pages)
        self.shared.position = position
        effects: list[Effect] = [
            Send(DocumentScrolled(position=position, page=page, by=role), exclude=connection)
        ]
        if page != self.shared.page:
            self.shared.page = page
            effects.append(PageShown(info.id, page, now))
        return effects

    def _end(self, by: str, now: float) -> list[Effect]:
        recording = self._recording(self.recording.ended(now), now)
        self.state = RoomState.ENDED
        effects: list[Effect] = [
            *(e for e in recording if not isinstance(e, Send)),
            MemoFinal(self.memo.text()),
            StateChanged(RoomState.ENDED),
            Send(Ended(by="host" if by == "host" else "timeout")),
        ]
        if self.shared.info is not None:
            effects.append(PageShown(None, 0, now))
        for seat in self.seats.values():
            if seat.connection is not None:
                effects.append(Close(seat.connection, CloseCode.ROOM_ENDED))
            seat.connection, seat.rejoin_until = None, None
            if seat.presence != Presence.ABSENT:
                seat.presence = Presence.LEFT
        effects.extend(Close(observer, CloseCode.ROOM_ENDED) for observer in self.sit_in.observers)
        self.sit_in.observers.clear()
        return effects

    def _guest_leaves(self, now: float) -> list[Effect]:
        """The guest's 終了: it leaves (its video stops), and may come back within the grace period."""
        guest = self.seats[Role.GUEST]
        connection = guest.connection
        guest.connection, guest.presence, guest.since = None, Presence.LEFT, now
        guest.rejoin_until = now + self.grace
        effects: list[Effect] = [Send(PresenceChanged(role=Role.GUEST, presence=Presence.LEFT))]
        if connection is not None:
            effects.append(Close(connection, CloseCode.LEFT))
        effects.extend(self._media(self.media.left(Role.GUEST)))
        return effects
