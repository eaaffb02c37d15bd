"""The room's media rules (signaling/call_media.py) through the room state machine: no sockets, no video."""

from __future__ import annotations

import pytest

from signaling.call_media import GUEST_NOT_CONNECTED, GUEST_ONLY, HOST_ONLY, MediaLeave, Negotiate
from signaling.protocol import (
    BadMessage,
    CameraReply,
    CameraReplyOut,
    CameraRequest,
    CameraRequestOut,
    End,
    ErrorCode,
    ErrorFrame,
    HighQuality,
    MediaOffer,
    MediaState,
    PeerMedia,
    PeerVideo,
    QualityOut,
    Role,
    VideoStatus,
    parse_client_message,
)
from signaling.room import EventKind, Happened, Room, Send
from tests.helpers import sent


def active_room() -> Room:
    room = Room("r1", "1234567")
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=1)
    return room


def test_an_offer_becomes_a_negotiation_for_that_connection() -> None:
    room = active_room()
    effects = room.receive(Role.GUEST, "g1", MediaOffer(type="media.offer", sdp="v=0"), now=2)
    assert effects == [Negotiate(Role.GUEST, "g1", "v=0")]


def test_media_state_goes_to_the_other_side_and_again_on_reconnect() -> None:
    room = active_room()
    state = MediaState(type="media.state", camera="blocked", screen=False, audio=False)
    effects = room.receive(Role.GUEST, "g1", state, now=2)
    [told] = sent(effects, PeerMedia)
    assert told.to == "h1" and told.message == PeerMedia(
        role=Role.GUEST, camera="blocked", screen=False, audio=False
    )
    # The host reloads its page: it learns the guest's camera state with its welcome.
    [again] = sent(room.connect(Role.HOST, "h2", now=3), PeerMedia)
    assert again.to == "h2" and again.message.camera == "blocked"
    # Nothing known about the host yet: the guest's reconnect carries no media.peer.
    room.disconnect(Role.GUEST, "g1", now=4)
    assert sent(room.connect(Role.GUEST, "g2", now=5), PeerMedia) == []


def test_camera_stop_and_start_requests_go_from_host_to_guest_and_the_answer_back() -> None:
    room = active_room()
    [kept, stop] = room.receive(Role.HOST, "h1", CameraRequest(type="camera.request", action="stop"), now=2)
    assert kept == Happened(EventKind.CAMERA_REQUEST, "stop", 2)  # on the meeting's timeline
    assert stop == Send(CameraRequestOut(action="stop"), to="g1")
    [_, start] = room.receive(Role.HOST, "h1", CameraRequest(type="camera.request", action="start"), now=3)
    assert start == Send(CameraRequestOut(action="start"), to="g1")
    # Why there is no camera reaches the host as the guest's browser knows it, not as "declined" for all.
    for why in ("declined", "blocked", "none", "on"):
        [answer] = room.receive(Role.GUEST, "g1", CameraReply(type="camera.reply", camera=why), now=4)
        assert answer == Send(CameraReplyOut(camera=why), to="h1")


def test_each_reason_for_no_camera_is_its_own_state_and_old_names_are_refused() -> None:
    for camera in ("declined", "blocked", "none"):
        frame = f'{{"type": "media.state", "camera": "{camera}", "screen": false, "audio": false}}'
        assert parse_client_message(frame) == MediaState(
            type="media.state", camera=camera, screen=False, audio=False
        )
    for frame in (
        '{"type": "media.state", "camera": "denied", "screen": false, "audio": false}',
        '{"type": "camera.reply", "accepted": false}',
        '{"type": "camera.reply", "camera": "off"}',
    ):
        with pytest.raises(BadMessage):
            parse_client_message(frame)


def test_only_the_host_requests_and_only_the_guest_answers() -> None:
    room = active_room()
    [refused] = room.receive(Role.GUEST, "g1", CameraRequest(type="camera.request", action="stop"), now=2)
    assert refused == Send(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=HOST_ONLY), to="g1")
    [refused] = room.receive(Role.GUEST, "g1", HighQuality(type="media.quality", high=True), now=2)
    assert refused.message.message == HOST_ONLY  # type: ignore[union-attr]
    [refused] = room.receive(Role.HOST, "h1", CameraReply(type="camera.reply", camera="on"), now=2)
    assert refused == Send(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=GUEST_ONLY), to="h1")
    assert room.media.high_quality is False


def test_a_request_while_the_guest_is_away_is_refused_with_a_reason() -> None:
    room = active_room()
    room.disconnect(Role.GUEST, "g1", now=2)
    [refused] = room.receive(Role.HOST, "h1", CameraRequest(type="camera.request", action="start"), now=3)
    assert refused == Send(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=GUEST_NOT_CONNECTED), to="h1")


def test_high_quality_mode_reaches_both_and_a_reconnecting_guest() -> None:
    room = active_room()
    effects = room.receive(Role.HOST, "h1", HighQuality(type="media.quality", high=True), now=2)
    assert {e.to for e in sent(effects, QualityOut)} == {"g1", "h1"}
    room.disconnect(Role.GUEST, "g1", now=3)
    [on] = sent(room.connect(Role.GUEST, "g2", now=4), QualityOut)
    assert (on.message, on.to) == (QualityOut(high=True), "g2")
    room.receive(Role.HOST, "h1", HighQuality(type="media.quality", high=False), now=5)
    assert sent(room.connect(Role.GUEST, "g3", now=6), QualityOut) == []


def test_a_guest_who_leaves_stops_its_media_and_the_host_is_told() -> None:
    room = active_room()
    room.receive(
        Role.GUEST, "g1", MediaState(type="media.state", camera="on", screen=True, audio=False), now=2
    )
    effects = room.receive(Role.GUEST, "g1", End(type="end"), now=3)
    assert MediaLeave(Role.GUEST) in effects
    [told] = sent(effects, PeerMedia)
    assert told.to == "h1" and told.message.camera == "none" and told.message.screen is False


def test_a_guest_who_does_not_come_back_in_time_stops_its_media() -> None:
    room = active_room()
    room.disconnect(Role.GUEST, "g1", now=2)
    assert MediaLeave(Role.GUEST) not in room.tick(now=2 + room.grace - 1)
    assert MediaLeave(Role.GUEST) in room.tick(now=2 + room.grace)


def test_no_video_and_why_goes_to_the_other_side_and_again_on_reconnect() -> None:
    room = active_room()
    status = VideoStatus(type="media.video", available=False, reason="unsupported")
    [told] = sent(room.receive(Role.GUEST, "g1", status, now=2), PeerVideo)
    assert told.to == "h1"
    assert told.message == PeerVideo(role=Role.GUEST, available=False, reason="unsupported")
    # The host reloads: it is told again with its welcome, so its notice is back at once.
    [again] = sent(room.connect(Role.HOST, "h2", now=3), PeerVideo)
    assert again.to == "h2" and again.message.reason == "unsupported"
    # Video works after all (a later retry connected): the host is told, and its notice goes.
    working = VideoStatus(type="media.video", available=True)
    [fixed] = sent(room.receive(Role.GUEST, "g1", working, now=4), PeerVideo)
    assert fixed.to == "h2" and fixed.message.available and fixed.message.reason is None
    # The guest leaves for good: nothing is replayed about it any more.
    room.receive(Role.GUEST, "g1", End(type="end"), now=5)
    assert sent(room.connect(Role.HOST, "h3", now=6), PeerVideo) == []


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "media.video", "available": false}',  # unavailable, but why not?
        '{"type": "media.video", "available": true, "reason": "network"}',
        '{"type": "media.video", "available": false, "reason": "firewall"}',
        '{"type": "media.video", "available": "no", "reason": "network"}',
        '{"type": "media.video", "available": false, "reason": "network", "detail": "x"}',
    ],
)
def test_a_video_status_that_does_not_add_up_is_refused(frame: str) -> None:
    with pytest.raises(BadMessage):
        parse_client_message(frame)


def test_each_reason_for_no_video_is_accepted() -> None:
    for reason in ("unsupported", "network", "camera"):
        frame = f'{{"type": "media.video", "available": false, "reason": "{reason}"}}'
        assert parse_client_message(frame) == VideoStatus(type="media.video", available=False, reason=reason)
