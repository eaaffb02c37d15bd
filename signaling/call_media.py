"""The room's media rules, sans I/O: who sends what, the host's camera requests, high-quality mode.

:class:`~signaling.room.Room` hands media messages here and carries the effects out like its own. The
video itself never passes through the room: ``media.offer`` becomes a :class:`Negotiate` effect that the
home node answers with the room's media relay (``media.MediaRooms``), and the packets flow there.

Rules (seed 004, カメラ設定):
- Each side tells what it sends (``media.state``); the other side is told at once and on every (re)connect,
  so the host's panels follow the guest's camera (declined, blocked or none: the host's own camera in
  panel A), and the host is told why there is no camera.
- Only the host asks the guest's camera to stop or start, and switches high-quality mode; only the guest
  answers a start request. A request while the guest is not connected is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import N_
from signaling.protocol import (
    CameraReply,
    CameraReplyOut,
    CameraRequest,
    CameraRequestOut,
    ErrorCode,
    ErrorFrame,
    HighQuality,
    MediaOffer,
    MediaState,
    PeerMedia,
    QualityOut,
    Role,
    ServerMessage,
)

GUEST_NOT_CONNECTED = N_("The customer is not connected.")
HOST_ONLY = N_("Only the representative can do this.")
GUEST_ONLY = N_("Only the customer can answer this.")

MediaMessage = MediaOffer | MediaState | CameraRequest | CameraReply | HighQuality


@dataclass(frozen=True)
class Negotiate:
    """Answer ``role``'s SDP offer with the room's relay and send the answer to ``connection``.

    A new offer for a seat replaces that seat's peer connection (a reload, a rejoin or a restart)."""

    role: Role
    connection: str
    sdp: str


@dataclass(frozen=True)
class MediaLeave:
    """``role`` has left for good: close its peer connection."""

    role: Role


@dataclass(frozen=True)
class Reply:
    """Send ``message`` to ``role``'s connection (if connected), or to ``connection`` when given."""

    message: ServerMessage
    role: Role | None = None
    connection: str | None = None


MediaEffect = Negotiate | MediaLeave | Reply


@dataclass
class CallMedia:
    states: dict[Role, MediaState] = field(default_factory=dict)
    high_quality: bool = False

    def connected(self, role: Role) -> list[MediaEffect]:
        """What a (re)connecting participant needs to know: the other side's media, high-quality mode."""
        other = Role.GUEST if role == Role.HOST else Role.HOST
        effects: list[MediaEffect] = []
        if other in self.states:
            effects.append(Reply(self._peer(other), role=role))
        if self.high_quality:
            effects.append(Reply(QualityOut(high=True), role=role))
        return effects

    def receive(
        self, role: Role, connection: str, message: MediaMessage, guest_connected: bool
    ) -> list[MediaEffect]:
        other = Role.GUEST if role == Role.HOST else Role.HOST
        match message:
            case MediaOffer(sdp=sdp):
                return [Negotiate(role, connection, sdp)]
            case MediaState():
                self.states[role] = message
                return [Reply(self._peer(role), role=other)]
            case CameraRequest() | HighQuality() if role != Role.HOST:
                return [self._refuse(connection, HOST_ONLY)]
            case CameraReply() if role != Role.GUEST:
                return [self._refuse(connection, GUEST_ONLY)]
            case CameraRequest() if not guest_connected:
                return [self._refuse(connection, GUEST_NOT_CONNECTED)]
            case CameraRequest(action=action):
                return [Reply(CameraRequestOut(action=action), role=Role.GUEST)]
            case CameraReply(camera=camera):
                return [Reply(CameraReplyOut(camera=camera), role=Role.HOST)]
            case HighQuality(high=high):
                self.high_quality = high
                return [
                    Reply(QualityOut(high=high), role=Role.GUEST),
                    Reply(QualityOut(high=high), role=Role.HOST),
                ]
        raise AssertionError(f"unhandled media message {message!r}")  # pragma: no cover

    def left(self, role: Role) -> list[MediaEffect]:
        """``role`` left for good: its media stops, and the other side is told it sends nothing."""
        self.states.pop(role, None)
        other = Role.GUEST if role == Role.HOST else Role.HOST
        gone = PeerMedia(role=role, camera="none", screen=False, audio=False)
        return [MediaLeave(role), Reply(gone, role=other)]

    def peers(self) -> list[PeerMedia]:
        """What each side that said so sends (for a manager sitting in, who sees both sides)."""
        return [self._peer(role) for role in self.states]

    def _peer(self, role: Role) -> PeerMedia:
        state = self.states[role]
        return PeerMedia(role=role, camera=state.camera, screen=state.screen, audio=state.audio)

    @staticmethod
    def _refuse(connection: str, message: str) -> Reply:
        # ``message`` is a message id; the participant's connection translates it.
        return Reply(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=message), connection=connection)
