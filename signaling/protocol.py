"""The room channel's wire messages (protocol version 1), defined once; docs/protocol.md mirrors this file.

One WebSocket per participant at ``/ws/rooms/{room_id}``, subprotocol ``tsunagu.v1``. Every frame is a JSON
object with a ``type``. Client frames are validated here at the socket edge: an invalid frame gets an
``error`` frame back and changes nothing. To add a message type, add a class to :data:`ClientMessage` or
:data:`ServerMessage` and handle it in ``signaling.room.Room``.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from core.errors import N_, InvalidInput
from recordings.limit import StopReason

SUBPROTOCOL = "tsunagu.v1"
MAX_FRAME_BYTES = 64 * 1024
POINTER_PER_SECOND = (
    20  # the most pointer positions (doc.pointer) one side sends, and the room relays, a second
)


class Role(enum.StrEnum):
    HOST = "host"
    GUEST = "guest"


class Presence(enum.StrEnum):
    ABSENT = "absent"  # has not connected yet
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # dropped without saying goodbye; may come back within the grace period
    LEFT = "left"  # ended on purpose, or did not come back in time


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (4000–4999 are for applications)."""

    NORMAL = 1000
    POLICY_VIOLATION = 1008  # too many invalid frames
    UNSUPPORTED_PROTOCOL = 4000
    NOT_ALLOWED = 4003  # not a participant of this room
    READ_ONLY = 4005  # a sitting-in manager's socket sent a frame: it may only watch
    ROOM_NOT_FOUND = 4004
    REPLACED = 4009  # the same participant connected again elsewhere
    ROOM_ENDED = 4010
    LEFT = 4011  # the guest ended its side
    REJOIN_EXPIRED = 4013  # came back after the grace period
    TOO_MANY_SOCKETS = 4029  # the lobby: this browser or address already holds its share of sockets
    UNAVAILABLE = 4503  # the room's node did not answer


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame: why the last frame was refused (docs/protocol.md)."""

    BAD_MESSAGE = "bad_message"  # not a valid frame (not JSON, unknown type, binary, too large)
    NOT_ALLOWED = "not_allowed"  # valid, but not for this participant now
    RATE_LIMITED = "rate_limited"  # more frames than the channel takes from one connection
    MEMO_FULL = "memo_full"  # the memo would pass its length cap
    MEDIA_UNAVAILABLE = "media_unavailable"  # this server has no video relay
    MEDIA_FAILED = "media_failed"  # the media offer could not be answered
    UNAVAILABLE = "unavailable"  # the server could not look something up just now (the database): try again
    # 共有メモ updates the memo does not take (signaling/memo.py); the update changed nothing anywhere.
    MEMO_OUT_OF_STEP = "memo_out_of_step"  # it starts past what the server has from its sender, or needs
    # something the server lacks: the server's step 1 follows, and the answer (step 2) brings what is missing
    MEMO_BROKEN_TEXT = "memo_broken_text"  # a lone surrogate, text that is not UTF-8, or a character cut in
    # two: the sender's memo differs from everyone's and starts afresh from the server's
    MEMO_NOT_TEXT = "memo_not_text"  # content a plain-text memo does not have: the sender starts afresh
    READ_ONLY = "read_only"  # any frame from a manager sitting in, who may only watch (closed with 4005 next)
    RECORDING_FAILED = "recording_failed"  # the recorder could not write (disk full, unwritable, too slow)


class _Message(BaseModel):
    # Strict: a page is a JSON integer, not "2" or 2.0; a flag is true/false, not 1.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Client -> server


class Ping(_Message):
    type: Literal["ping"]


class End(_Message):
    """終了. From the host: ends the meeting for both. From the guest: the guest leaves; the host stays."""

    type: Literal["end"]


class OpenDocument(_Message):
    """資料共有: the host shows a document from the library; both sides see its first page."""

    type: Literal["doc.open"]
    document_id: int = Field(ge=1)


class TurnPage(_Message):
    """Show ``page`` (1-based) of the open document. The host, or the guest when allowed."""

    type: Literal["doc.page"]
    page: int = Field(ge=1)


class ScrollDocument(_Message):
    """A vertical document was scrolled to ``position`` (0 = top, 1 = bottom), showing ``page`` on top."""

    type: Literal["doc.scroll"]
    position: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    page: int = Field(ge=1)


class CloseDocument(_Message):
    """Esc or ✕: close the document for both."""

    type: Literal["doc.close"]


class GuestControl(_Message):
    """The host lets the guest turn pages (off by default)."""

    type: Literal["doc.guest_control"]
    allowed: bool


class PointerAt(_Message):
    """Where the pointer is: on ``page`` (1-based) of the open document, ``x`` and ``y`` from its top left
    corner as fractions of the page's width and height (0–1), so each side places it on its own page size."""

    page: int = Field(ge=1)
    x: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    y: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class Pointer(_Message):
    """The steering side's mouse over the document (at most ~20 a second, only while over a page); ``at``
    null: it left the page. The host, or the guest when allowed; relayed to the other side, never stored."""

    type: Literal["doc.pointer"]
    at: PointerAt | None


class MemoSync(_Message):
    """共有メモ: base64 of one y-protocols sync message (step 1, step 2 or update; see signaling/memo.py)."""

    type: Literal["memo.sync"]
    data: str


class MemoAwareness(_Message):
    """共有メモ: base64 of a y-protocols awareness update (this side's caret); relayed, not stored."""

    type: Literal["memo.awareness"]
    data: str


CameraState = Literal["on", "off", "paused", "declined", "blocked", "none"]
"""on: sending video; off: turned off in the call (カメラをオフ, or the host's stop request);
paused: the tab is in the background; declined: the person said no when asked (the browser's prompt or the
host's request); blocked: the browser's settings block the camera for this site (the person must allow it
there); none: there is no camera, or it cannot be used (another app holds it, or the page is not a secure
context)."""

CameraAnswer = Literal["on", "declined", "blocked", "none"]
"""The guest's answer to the host's camera request: started, said no, blocked by the browser, no camera."""


class MediaOffer(_Message):
    """The browser's SDP offer for its one peer connection with the server (see docs/protocol.md, Media).

    ``restart`` is true when the browser replaces a failed connection (or reloads its media): the server then
    drops this participant's old peer connection and answers with a fresh one."""

    type: Literal["media.offer"]
    sdp: str = Field(min_length=1, max_length=60_000)
    restart: bool = False


class MediaState(_Message):
    """What this participant's browser is sending; passed on to the other side (panel layout, 一時停止中)."""

    type: Literal["media.state"]
    camera: CameraState
    screen: bool
    audio: bool


VideoProblem = Literal["unsupported", "network", "camera"]
"""Why a side has no video: unsupported: its browser has no WebRTC (no ``RTCPeerConnection``); network: its
peer connection did not reach ``connected`` within VIDEO_CONNECT_SECONDS (UDP blocked and no TURN, …);
camera: the browser refused the camera (blocked in its settings, or no camera that can be used)."""


class VideoStatus(_Message):
    """Whether video works for this side (``reason`` says why not; null when it works). Documents, pointer,
    memo, files and card go on either way; the other side is told (the host's 「映像を利用できません」)."""

    type: Literal["media.video"]
    available: bool
    reason: VideoProblem | None = None

    @model_validator(mode="after")
    def _reason_only_when_unavailable(self) -> VideoStatus:
        if self.available != (self.reason is None):
            raise ValueError("reason is given exactly when video is unavailable")
        return self


class CameraRequest(_Message):
    """Host only: ask the guest's camera to ``stop`` (done at once, the guest is told) or to ``start``
    (the guest is asked and may refuse)."""

    type: Literal["camera.request"]
    action: Literal["stop", "start"]


class CameraReply(_Message):
    """Guest only: the answer to a ``start`` request, saying why there is no camera when there is none."""

    type: Literal["camera.reply"]
    camera: CameraAnswer


class HighQuality(_Message):
    """Host only: high-quality mode for a mobile guest (720p capture and a higher bitrate) on or off."""

    type: Literal["media.quality"]
    high: bool


class RecordingSwitch(_Message):
    """Host only: stop (``on`` false) or restart the recording (レコログ) from the call page."""

    type: Literal["recording.switch"]
    on: bool


class RecordingSeen(_Message):
    """Guest only: its page showed that the meeting is recorded (before its camera started); ``device`` is
    a short summary of the browser and device, kept in the meeting record with the time."""

    type: Literal["recording.seen"]
    device: str = Field(max_length=200)


ClientMessage = Annotated[
    Ping
    | End
    | OpenDocument
    | TurnPage
    | ScrollDocument
    | CloseDocument
    | GuestControl
    | Pointer
    | MemoSync
    | MemoAwareness
    | MediaOffer
    | MediaState
    | VideoStatus
    | CameraRequest
    | CameraReply
    | HighQuality
    | RecordingSwitch
    | RecordingSeen,
    Field(discriminator="type"),
]
_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class BadMessage(InvalidInput):
    code = ErrorCode.BAD_MESSAGE
    message = N_("The message could not be understood.")


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """Validate one client frame; raises :class:`BadMessage` for anything that is not a known message."""
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise BadMessage()
    try:
        return _client_adapter.validate_json(frame)
    except ValidationError as exc:
        raise BadMessage() from exc


# A keystroke's frames, read without the validator: JSON.stringify({type: "memo.sync", data}) in the browser
# gives exactly this (and the same for the caret's memo.awareness, sent with every keystroke), and base64
# holds nothing JSON escapes. Anything else (spaces, other keys, other order, escapes) goes through
# parse_client_message, which reads it in full; what these return is what that would give as the message's
# data. The validator was ~5 µs of a keystroke's ~100 in the server (bench/README.md).
_MEMO_SYNC_PREFIX = '{"type":"memo.sync","data":"'
_MEMO_AWARENESS_PREFIX = '{"type":"memo.awareness","data":"'
_SUFFIX = '"}'
_BASE64_CHARACTERS = re.compile(r"[A-Za-z0-9+/=]*")


def memo_sync_data(frame: str) -> str | None:
    """The data of a ``memo.sync`` frame in the exact form browsers send, or None: then read it with
    :func:`parse_client_message` (which may still take it, or says what is wrong with it)."""
    return _data_of(frame, _MEMO_SYNC_PREFIX)


def memo_awareness_data(frame: str) -> str | None:
    """As :func:`memo_sync_data`, for a ``memo.awareness`` frame."""
    return _data_of(frame, _MEMO_AWARENESS_PREFIX)


def _data_of(frame: str, prefix: str) -> str | None:
    if (
        frame.startswith(prefix)
        and frame.endswith(_SUFFIX)
        and len(frame) <= MAX_FRAME_BYTES  # base64 is ASCII: characters are bytes
        and len(frame) >= len(prefix) + len(_SUFFIX)
    ):
        data = frame[len(prefix) : -len(_SUFFIX)]
        if _BASE64_CHARACTERS.fullmatch(data):
            return data
    return None


# Server -> client


class Peers(_Message):
    host: Presence
    guest: Presence


class RoomInfo(_Message):
    id: str
    state: str
    connect_id: str


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    protocol: int = 1
    role: Role
    room: RoomInfo
    peers: Peers
    home: str = ""


class PresenceChanged(_Message):
    type: Literal["presence"] = "presence"
    role: Role
    presence: Presence


class RoomStateChanged(_Message):
    type: Literal["room"] = "room"
    state: str


class Ended(_Message):
    type: Literal["ended"] = "ended"
    by: Literal["host", "timeout"]


class DocumentInfo(_Message):
    id: int
    name: str
    kind: Literal["slides", "vertical"]
    pages: int


class DocumentState(_Message):
    """What both sides show: sent on every change, and to a participant when it (re)connects."""

    type: Literal["doc.state"] = "doc.state"
    document: DocumentInfo | None
    page: int
    position: float
    guest_control: bool


class DocumentScrolled(_Message):
    """The other side scrolled a vertical document."""

    type: Literal["doc.scroll"] = "doc.scroll"
    position: float
    page: int
    by: Role


class PointerMoved(_Message):
    """The other side's pointer over the document moved (``at``), or left the page (``at`` null)."""

    type: Literal["doc.pointer"] = "doc.pointer"
    at: PointerAt | None
    by: Role


class FileInfo(_Message):
    id: int
    name: str
    size: int
    sender: Role


class FileShared(_Message):
    """ファイル送信: a participant's file is stored and ready to download (``/rooms/{room}/files/{id}``)."""

    type: Literal["file.shared"] = "file.shared"
    file: FileInfo


class MemoSyncOut(_Message):
    """共有メモ: a sync message from the server (its step 1 / step 2, or the other side's update)."""

    type: Literal["memo.sync"] = "memo.sync"
    data: str


class MemoAwarenessOut(_Message):
    """共有メモ: the other side's awareness update (its caret), relayed as received."""

    type: Literal["memo.awareness"] = "memo.awareness"
    data: str


def memo_sync_out(data: str) -> MemoSyncOut:
    """``MemoSyncOut(data=data)`` without validation, for base64 the server read or made itself: a
    keystroke's copy, many a second (pydantic's ``model_construct`` alone was ~2 µs of it). It sets what
    ``model_construct`` sets; tests/test_keystroke_lane.py holds the two equal."""
    return _unvalidated(MemoSyncOut, "memo.sync", data)


def memo_awareness_out(data: str) -> MemoAwarenessOut:
    """As :func:`memo_sync_out`, for the caret's copy."""
    return _unvalidated(MemoAwarenessOut, "memo.awareness", data)


_Model = TypeVar("_Model", bound=BaseModel)
_new_model = object.__new__
_set_attribute = object.__setattr__


def _unvalidated(model: type[_Model], kind: str, data: str) -> _Model:
    message = _new_model(model)
    _set_attribute(message, "__dict__", {"type": kind, "data": data})
    _set_attribute(message, "__pydantic_fields_set__", {"data"})
    _set_attribute(message, "__pydantic_extra__", None)
    _set_attribute(message, "__pydantic_private__", None)
    return message


class MediaAnswer(_Message):
    """The server's SDP answer to this participant's ``media.offer``."""

    type: Literal["media.answer"] = "media.answer"
    sdp: str


class PeerMedia(_Message):
    """What the other participant is sending (its last ``media.state``); also sent on (re)connect."""

    type: Literal["media.peer"] = "media.peer"
    role: Role
    camera: CameraState
    screen: bool
    audio: bool


class PeerVideo(_Message):
    """Whether video works for the other side, and why not (its last ``media.video``); also on (re)connect."""

    type: Literal["media.video"] = "media.video"
    role: Role
    available: bool
    reason: VideoProblem | None


class CameraRequestOut(_Message):
    """To the guest: the host asks its camera to stop or start."""

    type: Literal["camera.request"] = "camera.request"
    action: Literal["stop", "start"]


class CameraReplyOut(_Message):
    """To the host: the guest's answer to a start request (started, declined, blocked or no camera)."""

    type: Literal["camera.reply"] = "camera.reply"
    camera: CameraAnswer


class QualityOut(_Message):
    """To the guest (and to the host, to keep its toggle right): high-quality mode is on or off."""

    type: Literal["media.quality"] = "media.quality"
    high: bool


class SitInWelcome(_Message):
    """To a manager sitting in (read-only), on every (re)connect: the room, and the connection id its media
    offer names (``POST /api/sit-in/{room}/offer``)."""

    type: Literal["sit_in.welcome"] = "sit_in.welcome"
    room: RoomInfo
    peers: Peers
    connection: str


class SitInChanged(_Message):
    """To the participants: whether a manager is sitting in (「上長が同席中」), when the org shows it."""

    type: Literal["sit_in"] = "sit_in"
    present: bool


class RecordingState(_Message):
    """Whether the meeting is being recorded (「録画中」), to both sides and observers: on (re)connect and on
    every change. ``armed``: recording is switched on for this meeting (it starts with the first media, and
    the guest's page says so before its camera starts). ``stopped``: why it stopped, if it did.
    ``remaining``: seconds left of the 120-minute limit, once it has started."""

    type: Literal["recording.state"] = "recording.state"
    armed: bool
    recording: bool
    stopped: StopReason | None = None
    remaining: float | None = None


class RecordingNotice(_Message):
    """To the host: ten minutes of recording are left (at 110 minutes), or the limit stopped it."""

    type: Literal["recording.notice"] = "recording.notice"
    notice: Literal["ten_minutes_left", "limit_reached"]


class Pong(_Message):
    type: Literal["pong"] = "pong"


class ErrorFrame(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


ServerMessage = (
    Welcome
    | PresenceChanged
    | RoomStateChanged
    | Ended
    | DocumentState
    | DocumentScrolled
    | PointerMoved
    | FileShared
    | MemoSyncOut
    | MemoAwarenessOut
    | MediaAnswer
    | PeerMedia
    | PeerVideo
    | CameraRequestOut
    | CameraReplyOut
    | QualityOut
    | SitInWelcome
    | SitInChanged
    | RecordingState
    | RecordingNotice
    | Pong
    | ErrorFrame
)
