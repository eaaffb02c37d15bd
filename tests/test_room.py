"""The room state machine on its own: events in, effects out, a hand-moved clock, no sockets."""

from __future__ import annotations

import pytest

from signaling.models import RoomState
from signaling.protocol import CloseCode, End, Ended, Ping, Pong, Presence, PresenceChanged, Role, Welcome
from signaling.room import Close, Room, RoomError, Send, StateChanged


def frames(effects, kind):  # type: ignore[no-untyped-def]
    return [e for e in effects if isinstance(e, Send) and isinstance(e.message, kind)]


def test_both_connecting_makes_the_room_active_and_welcomes_each() -> None:
    room = Room("r1", "1234567")
    host = room.connect(Role.HOST, "h1", now=0)
    assert room.state == RoomState.WAITING
    welcome = frames(host, Welcome)[0]
    assert welcome.to == "h1" and welcome.message.room.connect_id == "1234567"  # type: ignore[attr-defined]
    assert welcome.message.peers.guest == Presence.ABSENT  # type: ignore[attr-defined]
    guest = room.connect(Role.GUEST, "g1", now=1)
    assert StateChanged(RoomState.ACTIVE) in guest and room.state == RoomState.ACTIVE
    guest_welcome = frames(guest, Welcome)[0].message
    assert guest_welcome.room.connect_id == ""  # type: ignore[attr-defined]  # the 接続ID is for the host
    told = frames(guest, PresenceChanged)[0]
    assert told.exclude == "g1" and told.message.presence == Presence.CONNECTED  # type: ignore[attr-defined]


def test_host_end_closes_everyone_and_is_final() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    effects = room.receive(Role.HOST, "h1", End(type="end"), 5)
    assert StateChanged(RoomState.ENDED) in effects
    assert frames(effects, Ended)[0].message.by == "host"  # type: ignore[attr-defined]
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
    assert frames(effects, PresenceChanged)[0].message.presence == Presence.LEFT  # type: ignore[attr-defined]
    assert Close("g1", CloseCode.LEFT) in effects
    with pytest.raises(RoomError) as refused:
        room.connect(Role.GUEST, "g2", 6)
    assert refused.value.code == CloseCode.LEFT


def test_rejoin_within_the_grace_period_and_not_after() -> None:
    room = Room("r1", "1", grace=300)
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    dropped = room.disconnect(Role.GUEST, "g1", now=10)
    assert frames(dropped, PresenceChanged)[0].message.presence == Presence.RECONNECTING  # type: ignore[attr-defined]
    assert room.next_deadline() == 310
    back = room.connect(Role.GUEST, "g2", now=309.9)
    assert frames(back, Welcome)
    room.disconnect(Role.GUEST, "g2", now=400)
    assert room.tick(now=699.9) == []
    with pytest.raises(RoomError) as late:
        room.connect(Role.GUEST, "g3", now=700)
    assert late.value.code == CloseCode.REJOIN_EXPIRED
    gone = room.tick(now=700)
    assert frames(gone, PresenceChanged)[0].message.presence == Presence.LEFT  # type: ignore[attr-defined]
    assert room.next_deadline() is None


def test_host_who_never_comes_back_ends_the_room() -> None:
    room = Room("r1", "1", grace=300)
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    room.disconnect(Role.HOST, "h1", 1)
    effects = room.tick(301)
    assert room.state == RoomState.ENDED
    assert frames(effects, Ended)[0].message.by == "timeout"  # type: ignore[attr-defined]
    assert Close("g1", CloseCode.ROOM_ENDED) in effects


def test_a_second_tab_replaces_the_first_and_stale_events_are_ignored() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    effects = room.connect(Role.HOST, "h2", 1)
    assert Close("h1", CloseCode.REPLACED) in effects
    assert room.disconnect(Role.HOST, "h1", 2) == []  # the old socket closing changes nothing
    assert room.receive(Role.HOST, "h1", Ping(type="ping"), 2) == [Close("h1", CloseCode.REPLACED)]
    assert frames(room.receive(Role.HOST, "h2", Ping(type="ping"), 2), Pong)[0].to == "h2"


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
    assert room.abort() == []  # ending twice says nothing twice
