"""The room state machine on its own: events in, effects out, a hand-moved clock, no sockets."""

from __future__ import annotations

import pytest

from signaling.models import RoomState
from signaling.protocol import (
    CloseCode,
    CloseDocument,
    DocumentInfo,
    DocumentScrolled,
    DocumentState,
    End,
    Ended,
    ErrorCode,
    ErrorFrame,
    GuestControl,
    OpenDocument,
    Ping,
    Pong,
    Presence,
    PresenceChanged,
    Role,
    ScrollDocument,
    TurnPage,
    Welcome,
)
from signaling.room import (
    NO_SUCH_DOCUMENT,
    NOT_ALLOWED,
    Close,
    Effect,
    PageShown,
    ResolveDocument,
    Room,
    RoomError,
    Send,
    StateChanged,
)
from tests.helpers import sent


def test_both_connecting_makes_the_room_active_and_welcomes_each() -> None:
    room = Room("r1", "1234567")
    host = room.connect(Role.HOST, "h1", now=0)
    assert room.state == RoomState.WAITING
    welcome = sent(host, Welcome)[0]
    assert welcome.to == "h1" and welcome.message.room.connect_id == "1234567"
    assert welcome.message.peers.guest == Presence.ABSENT
    guest = room.connect(Role.GUEST, "g1", now=1)
    assert StateChanged(RoomState.ACTIVE) in guest
    assert room.state == RoomState.ACTIVE  # type: ignore[comparison-overlap]  # connect() moved it on
    guest_welcome = sent(guest, Welcome)[0].message
    assert guest_welcome.room.connect_id == ""  # the 接続ID is for the host
    told = sent(guest, PresenceChanged)[0]
    assert told.exclude == "g1" and told.message.presence == Presence.CONNECTED


def test_host_end_closes_everyone_and_is_final() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    effects = room.receive(Role.HOST, "h1", End(type="end"), 5)
    assert StateChanged(RoomState.ENDED) in effects
    assert sent(effects, Ended)[0].message.by == "host"
    assert {c.connection for c in effects if isinstance(c, Close)} == {"h1", "g1"}
    with pytest.raises(RoomError) as refused:
        room.connect(Role.GUEST, "g2", 6)
    assert refused.value.code == CloseCode.ROOM_ENDED


def test_guest_end_leaves_the_host_in_the_room() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    effects = room.receive(Role.GUEST, "g1", End(type="end"), 5)
    assert room.state == RoomState.ACTIVE
    assert sent(effects, PresenceChanged)[0].message.presence == Presence.LEFT
    assert Close("g1", CloseCode.LEFT) in effects
    assert room.next_deadline() is None  # nothing to do when the rejoin window closes


def test_a_guest_who_pressed_end_may_connect_again_within_the_grace_period() -> None:
    room = Room("r1", "1", grace=300)
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    room.receive(Role.GUEST, "g1", End(type="end"), 10)
    back = room.connect(Role.GUEST, "g2", now=309.9)  # もう一度接続する
    assert sent(back, Welcome)[0].to == "g2"
    told = sent(back, PresenceChanged)[0]
    assert told.exclude == "g2" and told.message.presence == Presence.CONNECTED
    assert room.seats[Role.GUEST].presence == Presence.CONNECTED
    # Leaving again opens a new window, counted from the second 終了.
    room.receive(Role.GUEST, "g2", End(type="end"), 400)
    assert sent(room.connect(Role.GUEST, "g3", now=699.9), Welcome)
    room.receive(Role.GUEST, "g3", End(type="end"), 700)
    with pytest.raises(RoomError) as late:
        room.connect(Role.GUEST, "g4", now=1000)
    assert late.value.code == CloseCode.REJOIN_EXPIRED
    assert room.state == RoomState.ACTIVE  # the host is still there


def test_a_guest_who_left_by_timing_out_stays_out_and_a_host_end_is_final() -> None:
    room = Room("r1", "1", grace=300)
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    room.disconnect(Role.GUEST, "g1", now=1)
    room.tick(now=301)
    with pytest.raises(RoomError) as refused:
        room.connect(Role.GUEST, "g2", now=302)
    assert refused.value.code == CloseCode.LEFT

    ended = Room("r2", "2", grace=300)
    ended.connect(Role.HOST, "h1", 0)
    ended.connect(Role.GUEST, "g1", 0)
    ended.receive(Role.GUEST, "g1", End(type="end"), 1)
    ended.receive(Role.HOST, "h1", End(type="end"), 2)
    with pytest.raises(RoomError) as closed:
        ended.connect(Role.GUEST, "g2", now=3)
    assert closed.value.code == CloseCode.ROOM_ENDED


def test_rejoin_within_the_grace_period_and_not_after() -> None:
    room = Room("r1", "1", grace=300)
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    dropped = room.disconnect(Role.GUEST, "g1", now=10)
    assert sent(dropped, PresenceChanged)[0].message.presence == Presence.RECONNECTING
    assert room.next_deadline() == 310
    back = room.connect(Role.GUEST, "g2", now=309.9)
    assert sent(back, Welcome)
    room.disconnect(Role.GUEST, "g2", now=400)
    assert room.tick(now=699.9) == []
    with pytest.raises(RoomError) as late:
        room.connect(Role.GUEST, "g3", now=700)
    assert late.value.code == CloseCode.REJOIN_EXPIRED
    gone = room.tick(now=700)
    assert sent(gone, PresenceChanged)[0].message.presence == Presence.LEFT
    assert room.next_deadline() is None


def test_host_who_never_comes_back_ends_the_room() -> None:
    room = Room("r1", "1", grace=300)
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    room.disconnect(Role.HOST, "h1", 1)
    effects = room.tick(301)
    assert room.state == RoomState.ENDED
    assert sent(effects, Ended)[0].message.by == "timeout"
    assert Close("g1", CloseCode.ROOM_ENDED) in effects


def test_a_second_tab_replaces_the_first_and_stale_events_are_ignored() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    effects = room.connect(Role.HOST, "h2", 1)
    assert Close("h1", CloseCode.REPLACED) in effects
    assert room.disconnect(Role.HOST, "h1", 2) == []  # the old socket closing changes nothing
    assert room.receive(Role.HOST, "h1", Ping(type="ping"), 2) == [Close("h1", CloseCode.REPLACED)]
    assert sent(room.receive(Role.HOST, "h2", Ping(type="ping"), 2), Pong)[0].to == "h2"


def test_active_once_both_have_been_in_even_if_not_at_the_same_time() -> None:
    room = Room("r1", "1")
    room.connect(Role.GUEST, "g1", 0)
    room.receive(Role.GUEST, "g1", End(type="end"), 1)
    assert room.state == RoomState.WAITING
    assert StateChanged(RoomState.ACTIVE) in room.connect(Role.HOST, "h1", 2)


def test_frames_after_the_end_are_answered_with_ended() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.receive(Role.HOST, "h1", End(type="end"), 1)
    assert room.receive(Role.HOST, "h1", Ping(type="ping"), 2) == [Close("h1", CloseCode.ROOM_ENDED)]
    assert room.abort(3) == []  # ending twice says nothing twice


SLIDES = DocumentInfo(id=7, name="会社案内", kind="slides", pages=10)
TALL = DocumentInfo(id=8, name="料金表", kind="vertical", pages=4)


def active_room() -> Room:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    return room


def states(effects: list[Effect]) -> list[DocumentState]:
    return [e.message for e in sent(effects, DocumentState)]


def test_host_opens_a_document_and_both_see_page_one() -> None:
    room = active_room()
    (resolve,) = room.receive(Role.HOST, "h1", OpenDocument(type="doc.open", document_id=7), 1)
    assert resolve == ResolveDocument(7, "h1")
    effects = room.document_found(SLIDES, "h1", 2)
    assert effects[0] == PageShown(7, 1, 2, opens=True)  # stored before the frames: it grants the images
    (state,) = sent(effects, DocumentState)
    assert state.to is None and state.message.document == SLIDES and state.message.page == 1
    assert room.document_found(None, "h1", 3) == [
        Send(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=NO_SUCH_DOCUMENT), to="h1")
    ]


def test_turning_pages_logs_each_page_and_stays_in_range() -> None:
    room = active_room()
    room.document_found(SLIDES, "h1", 0)
    effects = room.receive(Role.HOST, "h1", TurnPage(type="doc.page", page=2), 10)
    assert PageShown(7, 2, 10) in effects and states(effects)[0].page == 2
    last = room.receive(Role.HOST, "h1", TurnPage(type="doc.page", page=99), 20)
    assert PageShown(7, 10, 20) in last
    assert room.receive(Role.HOST, "h1", TurnPage(type="doc.page", page=10), 21) == [
        Send(room.shared.state(), to="h1")  # already there: only the sender is told, nothing is logged
    ]
    closed = room.receive(Role.HOST, "h1", CloseDocument(type="doc.close"), 30)
    assert PageShown(None, 0, 30) in closed and states(closed)[0].document is None


def test_the_guest_steers_only_when_allowed() -> None:
    room = active_room()
    room.document_found(SLIDES, "h1", 0)
    refused = room.receive(Role.GUEST, "g1", TurnPage(type="doc.page", page=2), 1)
    assert refused == [Send(ErrorFrame(code=ErrorCode.NOT_ALLOWED, message=NOT_ALLOWED), to="g1")]
    assert room.receive(Role.GUEST, "g1", OpenDocument(type="doc.open", document_id=7), 1) == refused
    allowed = room.receive(Role.HOST, "h1", GuestControl(type="doc.guest_control", allowed=True), 2)
    assert states(allowed)[0].guest_control is True
    assert PageShown(7, 2, 3) in room.receive(Role.GUEST, "g1", TurnPage(type="doc.page", page=2), 3)
    assert room.receive(Role.GUEST, "g1", GuestControl(type="doc.guest_control", allowed=False), 4) == refused


def test_scrolling_follows_on_the_other_side_and_logs_the_page_on_top() -> None:
    room = active_room()
    room.document_found(TALL, "h1", 0)
    effects = room.receive(Role.HOST, "h1", ScrollDocument(type="doc.scroll", position=0.2, page=1), 1)
    assert effects == [Send(DocumentScrolled(position=0.2, page=1, by=Role.HOST), exclude="h1")]
    further = room.receive(Role.HOST, "h1", ScrollDocument(type="doc.scroll", position=0.7, page=3), 2)
    assert PageShown(8, 3, 2) in further


def test_a_reconnecting_guest_lands_on_the_current_page_and_the_end_closes_the_view() -> None:
    room = active_room()
    room.document_found(SLIDES, "h1", 0)
    room.receive(Role.HOST, "h1", TurnPage(type="doc.page", page=4), 1)
    room.disconnect(Role.GUEST, "g1", 2)
    back = room.connect(Role.GUEST, "g2", 3)
    (state,) = sent(back, DocumentState)
    assert state.to == "g2" and state.message.page == 4
    ended = room.receive(Role.HOST, "h1", End(type="end"), 9)
    assert PageShown(None, 0, 9) in ended
