"""The recording's rules (recordings/limit.py) through the room state machine: a hand-moved clock, no sockets.

The 110-minute notice, the stop at exactly 120 minutes from the first start (a host restart does not reset
it), the call staying up, a restart after the limit refused with a message, 「録画中」 on both sides, and the
guest told before its camera starts."""

from __future__ import annotations

from recordings.limit import LIMIT, LIMIT_REACHED, StartRecording, StopReason, StopRecording
from signaling.models import RoomState
from signaling.protocol import (
    End,
    ErrorFrame,
    MediaState,
    RecordingNotice,
    RecordingSeen,
    RecordingState,
    RecordingSwitch,
    Role,
    VideoStatus,
)
from signaling.room import NOT_ALLOWED, Effect, EventKind, Happened, Room
from tests.helpers import sent

MINUTE = 60.0


def armed_room() -> Room:
    room = Room("r1", "1234567")
    room.recording.armed = True
    return room


def states(effects: list[Effect]) -> list[RecordingState]:
    return [s.message for s in sent(effects, RecordingState)]


def test_the_guest_is_told_before_its_camera_starts_and_when_it_saw_it_is_kept() -> None:
    room = armed_room()
    room.connect(Role.HOST, "h1", now=0)
    guest = room.connect(Role.GUEST, "g1", now=1)
    told = sent(guest, RecordingState)
    assert told and told[0].to == "g1"
    assert told[0].message.armed and not told[0].message.recording  # said before any media flows
    seen = room.receive(Role.GUEST, "g1", RecordingSeen(type="recording.seen", device="iPhone Safari"), 2)
    assert seen == [Happened(EventKind.RECORDING_SEEN, "iPhone Safari", 2)]
    refused = room.receive(Role.HOST, "h1", RecordingSeen(type="recording.seen", device="x"), 3)
    assert sent(refused, ErrorFrame)[0].message.message == NOT_ALLOWED


def test_a_room_not_armed_says_nothing_and_does_not_start() -> None:
    room = Room("r1", "1234567")
    assert not sent(room.connect(Role.GUEST, "g1", now=0), RecordingState)
    assert room.media_started(1) == []


def test_the_limit_counts_from_the_first_start_through_a_restart() -> None:
    room = armed_room()
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=0)
    start = 5.0
    effects = room.media_started(start)
    assert StartRecording(start) in effects
    shown = states(effects)[0]
    assert shown.recording and shown.remaining == LIMIT  # both sides (a broadcast) see 「録画中」
    assert sent(effects, RecordingState)[0].to is None
    assert room.media_started(start + 1) == []  # once
    assert room.next_deadline() == start + 110 * MINUTE

    # The host stops and restarts: the limit is not reset.
    switch = RecordingSwitch(type="recording.switch", on=False)
    stopped = room.receive(Role.HOST, "h1", switch, start + 30 * MINUTE)
    assert StopRecording(start + 30 * MINUTE, StopReason.HOST) in stopped
    assert not states(stopped)[0].recording
    assert room.next_deadline() is None  # nothing to time while stopped
    restarted = room.receive(
        Role.HOST, "h1", RecordingSwitch(type="recording.switch", on=True), start + 40 * MINUTE
    )
    assert StartRecording(start + 40 * MINUTE) in restarted
    assert states(restarted)[0].remaining == LIMIT - 40 * MINUTE

    # A minute before the notice: nothing. At 110 minutes: the host's notice, to the host only.
    assert room.tick(start + 109 * MINUTE) == []
    notice = room.tick(start + 110 * MINUTE)
    assert [n.message for n in sent(notice, RecordingNotice)] == [RecordingNotice(notice="ten_minutes_left")]
    assert sent(notice, RecordingNotice)[0].to == "h1"
    assert room.tick(start + 115 * MINUTE) == []  # once
    assert room.next_deadline() == start + LIMIT

    # A hair before 120 minutes it still runs; at exactly 120 it stops, and the call goes on.
    assert room.tick(start + LIMIT - 0.001) == []
    limit = room.tick(start + LIMIT)
    assert StopRecording(start + LIMIT, StopReason.LIMIT) in limit
    assert Happened(EventKind.RECORDING_STOPPED, "limit", start + LIMIT) in limit
    assert [n.message.notice for n in sent(limit, RecordingNotice)] == ["limit_reached"]
    final = states(limit)[0]
    assert not final.recording and final.stopped == StopReason.LIMIT and final.remaining == 0
    assert room.state == RoomState.ACTIVE  # the call itself has no time limit
    assert room.next_deadline() is None

    # A restart after the limit is refused with a message; nothing starts.
    late = room.receive(
        Role.HOST, "h1", RecordingSwitch(type="recording.switch", on=True), start + 125 * MINUTE
    )
    refusal = sent(late, ErrorFrame)
    assert refusal and refusal[0].to == "h1" and refusal[0].message.message == LIMIT_REACHED
    assert not any(isinstance(e, StartRecording) for e in late)
    assert not states(late)[0].recording
    # The meeting still works: media messages flow.
    media = MediaState(type="media.state", camera="on", screen=False, audio=False)
    assert room.receive(Role.GUEST, "g1", media, start + 126 * MINUTE)


def test_only_the_host_switches_and_a_failure_stops_with_the_reason() -> None:
    room = armed_room()
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=0)
    room.media_started(1)
    refused = room.receive(Role.GUEST, "g1", RecordingSwitch(type="recording.switch", on=False), 2)
    assert sent(refused, ErrorFrame)[0].message.message == NOT_ALLOWED
    assert room.recording.running
    failed = room.recording_failed("disk full", 3)
    assert StopRecording(3, StopReason.FAILED) in failed
    error = sent(failed, ErrorFrame)[0]
    assert error.to == "h1" and error.message.code == "recording_failed"
    assert room.state == RoomState.ACTIVE
    assert room.recording_failed("again", 4) == []  # once


def test_the_end_of_the_meeting_finishes_the_recording() -> None:
    room = armed_room()
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=0)
    room.media_started(1)
    ended = room.receive(Role.HOST, "h1", End(type="end"), 20)
    assert StopRecording(20, StopReason.ENDED) in ended


def test_camera_and_screen_changes_are_kept_for_the_timeline() -> None:
    room = Room("r1", "1234567")
    room.connect(Role.HOST, "h1", now=0)
    on = MediaState(type="media.state", camera="on", screen=False, audio=False)
    effects = room.receive(Role.HOST, "h1", on, 1)
    assert Happened(EventKind.CAMERA, "host on", 1) in effects
    sharing = MediaState(type="media.state", camera="on", screen=True, audio=False)
    effects = room.receive(Role.HOST, "h1", sharing, 2)
    assert Happened(EventKind.SCREEN, "host on", 2) in effects
    assert not any(isinstance(e, Happened) and e.kind == EventKind.CAMERA for e in effects)


def test_video_unavailable_and_why_is_kept_for_the_timeline() -> None:
    room = Room("r1", "1234567")
    room.connect(Role.HOST, "h1", now=0)
    room.connect(Role.GUEST, "g1", now=0)
    blocked = VideoStatus(type="media.video", available=False, reason="network")
    assert Happened(EventKind.VIDEO, "guest network", 1) in room.receive(Role.GUEST, "g1", blocked, 1)
    again = room.receive(Role.GUEST, "g1", blocked, 2)  # re-sent on a reconnect: kept once
    assert not any(isinstance(e, Happened) for e in again)
    works = VideoStatus(type="media.video", available=True)
    assert Happened(EventKind.VIDEO, "guest available", 3) in room.receive(Role.GUEST, "g1", works, 3)
