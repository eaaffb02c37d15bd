"""The pointer (doc.pointer) in the room state machine: relayed to the other side only, held back past ~20 a
second whatever the sender sends, never losing the last position (or the pointer leaving the page), and
dropped when no document shows the page it points at. Events in, effects out, a hand-moved clock."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.pointer import BURST, PER_SECOND
from signaling.protocol import (
    POINTER_PER_SECOND,
    BadMessage,
    DocumentInfo,
    ErrorFrame,
    GuestControl,
    Pointer,
    PointerAt,
    PointerMoved,
    Role,
    parse_client_message,
)
from signaling.room import NOT_ALLOWED, Effect, Room
from tests.helpers import sent

SLIDES = DocumentInfo(id=7, name="会社案内.pdf", kind="slides", pages=5)


def at(x: float, y: float = 0.5, page: int = 1) -> Pointer:
    return Pointer(type="doc.pointer", at=PointerAt(page=page, x=x, y=y))


LEFT = Pointer(type="doc.pointer", at=None)


def room_with_document() -> Room:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    room.document_found(SLIDES, "h1", 0)
    return room


def moved(effects: list[Effect]) -> list[PointerMoved]:
    return [send.message for send in sent(effects, PointerMoved)]


def test_the_host_pointer_reaches_the_guest_only() -> None:
    room = room_with_document()
    effects = room.receive(Role.HOST, "h1", at(0.25, 0.75, page=1), 1.0)
    [send] = sent(effects, PointerMoved)
    assert send.to == "g1"
    assert send.message.by == Role.HOST and send.message.at == PointerAt(page=1, x=0.25, y=0.75)
    assert moved(room.receive(Role.HOST, "h1", LEFT, 2.0)) == [PointerMoved(at=None, by=Role.HOST)]


def test_the_guest_points_only_when_allowed_to_steer() -> None:
    room = room_with_document()
    refused = room.receive(Role.GUEST, "g1", at(0.5), 1.0)
    assert [e.message.message for e in sent(refused, ErrorFrame)] == [NOT_ALLOWED]
    assert moved(refused) == []
    room.receive(Role.HOST, "h1", GuestControl(type="doc.guest_control", allowed=True), 1.0)
    [send] = sent(room.receive(Role.GUEST, "g1", at(0.5), 2.0), PointerMoved)
    assert send.to == "h1" and send.message.by == Role.GUEST


def test_no_document_or_a_page_it_lacks_drops_the_pointer_quietly() -> None:
    room = Room("r1", "1")
    room.connect(Role.HOST, "h1", 0)
    room.connect(Role.GUEST, "g1", 0)
    assert room.receive(Role.HOST, "h1", at(0.5), 1.0) == []  # crossed a close on the wire: no error
    room.document_found(SLIDES, "h1", 1.0)
    assert room.receive(Role.HOST, "h1", at(0.5, page=6), 2.0) == []
    assert len(moved(room.receive(Role.HOST, "h1", at(0.5, page=5), 3.0))) == 1


def test_a_flood_is_held_to_the_rate_and_ends_on_the_last_position() -> None:
    room = room_with_document()
    relayed: list[tuple[float, PointerMoved]] = []
    now = 10.0
    # 1,000 positions a second for two seconds, far past what the page sends.
    for step in range(2000):
        now = 10.0 + step / 1000
        relayed += [(now, m) for m in moved(room.receive(Role.HOST, "h1", at(step / 2000), now))]
        deadline = room.next_deadline()
        if deadline is not None and deadline <= now:
            relayed += [(now, m) for m in moved(room.tick(now))]
    # What is still held goes out on the room's next deadline, and it is the very last position.
    deadline = room.next_deadline()
    assert deadline is not None and deadline - now <= 1 / PER_SECOND + 1e-9
    relayed += [(deadline, m) for m in moved(room.tick(deadline))]
    assert room.next_deadline() is None
    assert relayed[-1][1].at == PointerAt(page=1, x=1999 / 2000, y=0.5)
    assert len(relayed) <= BURST + 2 * PER_SECOND + 1
    # In any one second, at most the rate and the burst.
    for start, _ in relayed:
        assert sum(start <= when < start + 1 for when, _ in relayed) <= PER_SECOND + BURST


def test_leaving_the_page_is_never_lost_in_a_flood() -> None:
    room = room_with_document()
    for step in range(50):
        room.receive(Role.HOST, "h1", at(step / 50), 1.0)  # all at the same moment
    assert moved(room.receive(Role.HOST, "h1", LEFT, 1.0)) == []  # held: over budget
    deadline = room.next_deadline()
    assert deadline is not None
    assert moved(room.tick(deadline)) == [PointerMoved(at=None, by=Role.HOST)]


def test_held_positions_are_forgotten_when_the_document_closes_or_changes() -> None:
    room = room_with_document()
    for step in range(10):
        room.receive(Role.HOST, "h1", at(step / 10), 1.0)
    assert room.next_deadline() is not None
    room.document_found(DocumentInfo(id=8, name="価格表.pdf", kind="vertical", pages=2), "h1", 1.0)
    assert room.next_deadline() is None
    assert moved(room.tick(5.0)) == []


def test_a_pointer_for_a_guest_not_there_goes_nowhere() -> None:
    room = room_with_document()
    room.disconnect(Role.GUEST, "g1", 1.0)
    assert moved(room.receive(Role.HOST, "h1", at(0.5), 2.0)) == []


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "doc.pointer"},  # ``at`` is required: null says "left the page"
        {"type": "doc.pointer", "at": {"page": 0, "x": 0.5, "y": 0.5}},
        {"type": "doc.pointer", "at": {"page": 1, "x": 1.5, "y": 0.5}},
        {"type": "doc.pointer", "at": {"page": 1, "x": -0.1, "y": 0.5}},
        {"type": "doc.pointer", "at": {"page": 1, "x": "0.5", "y": 0.5}},
        {"type": "doc.pointer", "at": {"page": 1.0, "x": 0.5, "y": 0.5}},
        {"type": "doc.pointer", "at": {"page": 1, "x": 0.5}},
        {"type": "doc.pointer", "at": {"page": 1, "x": 0.5, "y": 0.5, "z": 1}},
        {"type": "doc.pointer", "at": None, "by": "host"},
    ],
)
def test_malformed_pointers_are_refused_at_the_edge(frame: object) -> None:
    with pytest.raises(BadMessage):
        parse_client_message(json.dumps(frame))


def test_non_finite_coordinates_are_refused_at_the_edge() -> None:
    for value in ("NaN", "Infinity"):
        with pytest.raises(BadMessage):
            parse_client_message('{"type": "doc.pointer", "at": {"page": 1, "x": ' + value + ', "y": 0.5}}')


def test_the_rate_is_the_one_the_browser_keeps_to() -> None:
    assert PER_SECOND == POINTER_PER_SECOND


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.2), st.booleans()), min_size=1, max_size=200))
def test_any_timing_stays_within_budget_and_ends_on_the_last_word(steps: list[tuple[float, bool]]) -> None:
    """Whatever the gaps between positions (and leaves), the other side ends on the sender's last one, and
    never gets more than the rate and the burst in any second."""
    room = room_with_document()
    now, relayed = 1.0, []
    last: PointerAt | None = None
    for gap, leave in steps:
        deadline = room.next_deadline()
        if deadline is not None and deadline <= now + gap:
            relayed += [(deadline, m) for m in moved(room.tick(deadline))]
        now += gap
        last = None if leave else PointerAt(page=1, x=min(1.0, gap * 5), y=0.5)
        message = Pointer(type="doc.pointer", at=last)
        relayed += [(now, m) for m in moved(room.receive(Role.HOST, "h1", message, now))]
    for _ in range(3):
        deadline = room.next_deadline()
        if deadline is None:
            break
        relayed += [(deadline, m) for m in moved(room.tick(max(deadline, now)))]
    assert room.next_deadline() is None
    assert relayed and relayed[-1][1].at == last
    for start, _ in relayed:
        assert sum(start <= when < start + 1 for when, _ in relayed) <= PER_SECOND + BURST
