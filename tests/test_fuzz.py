"""Protocol fuzz with Hypothesis: random and malformed frames never crash the server or affect another room.

Three layers, from the inside out:

1. ``parse_client_message`` on arbitrary text, bytes, JSON-ish values and oversized frames: it returns a
   message exactly when an independent oracle (``json.loads`` plus the protocol's rules) says the frame is
   one, and raises :class:`BadMessage` otherwise; nothing else ever escapes.
2. :class:`Room` as a Hypothesis state machine: connects, disconnects, messages, ticks and aborts for both
   roles, with fresh and stale connection ids and a clock that only moves forward; invariants after every
   step.
3. The live server over real sockets, on the in-process and the Redis backend: bursts of generated frames
   into one room's socket, then that socket, another room, ``/healthz`` and number issuing are checked.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from signaling.models import RoomState
from signaling.protocol import (
    MAX_FRAME_BYTES,
    BadMessage,
    CloseCode,
    End,
    Ping,
    Presence,
    Role,
    parse_client_message,
)
from signaling.room import Close, Effect, Room, RoomError, Send, StateChanged
from tests.harness.live import LiveServer
from tests.joining import BACKENDS, Browser, on_backend, receive, receive_type
from tests.test_joining import V1, guest, host, issue, server, start  # noqa: F401 - fixtures
from web.room_socket import MAX_BAD_FRAMES
from web.services import services
from web.settings import Settings

Frame = str | bytes

# Frames


def oracle(frame: Frame) -> str | None:
    """The message type ``frame`` must parse to, or None when it must be refused; independent of pydantic."""
    try:
        data = frame.encode("utf-8") if isinstance(frame, str) else frame  # a lone surrogate is not UTF-8
        if len(data) > MAX_FRAME_BYTES:
            return None
        value = json.loads(data.decode("utf-8"))  # decoded here: json.loads(bytes) would also take UTF-16
    except (UnicodeError, ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    fields = FIELDS.get(value["type"])
    if fields is None or value.keys() != {"type", *fields}:
        return None
    if all(check(value[name]) for name, check in fields.items()):
        return str(value["type"])
    return None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _integer(value) and value >= 1


def _fraction(value: Any) -> bool:
    return (_integer(value) or isinstance(value, float)) and 0 <= value <= 1  # NaN and ±inf fail the range


# Each client message type and its fields' rules, written from docs/protocol.md, not from the pydantic models.
FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "ping": {},
    "end": {},
    "doc.open": {"document_id": _positive},
    "doc.page": {"page": _positive},
    "doc.scroll": {"position": _fraction, "page": _positive},
    "doc.close": {},
    "doc.guest_control": {"allowed": lambda value: isinstance(value, bool)},
    "memo.sync": {"data": lambda value: isinstance(value, str)},  # base64 is checked by the room
    "memo.awareness": {"data": lambda value: isinstance(value, str)},
}
REAL_TYPES = list(FIELDS)
FAKE_TYPES = ["pong", "welcome", "error", "presence", "ended", "PING", "Ping", " ping", "end ", "end\x00", ""]
FAKE_TYPES += ["ｐｉｎｇ", "__proto__", "constructor"]

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
any_text = st.text(st.characters(exclude_categories=()) | surrogates, max_size=60)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(REAL_TYPES)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
typed_objects = st.builds(
    lambda kind, extras: {**extras, "type": kind},
    st.sampled_from(REAL_TYPES + FAKE_TYPES) | json_values,
    st.dictionaries(
        st.sampled_from(["id", "data", "Type", "type ", "document_id", "page", "position", "allowed"])
        | st.text(max_size=6),
        json_values | st.sampled_from([0, 1, 2, 0.5, 1.5, True, -1]),
        max_size=3,
    ),
)


@st.composite
def encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> Frame:
    """A JSON value as a frame: compact or spaced, escaped or not, NaN allowed, text or bytes."""
    text = json.dumps(
        draw(values),
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", "\t:\r")])),
        allow_nan=True,
    )
    return text.encode() if draw(st.booleans()) else text


@st.composite
def malformed(draw: st.DrawFn) -> Frame:
    """A JSON frame cut short, with a few random characters (maybe none) spliced in or put at the end."""
    frame = draw(encoded(typed_objects))
    cut = draw(st.integers(0, len(frame)))
    rest = cut + draw(st.integers(0, 3)) if draw(st.booleans()) else len(frame)  # splice, or only cut
    if isinstance(frame, bytes):
        return frame[:cut] + draw(st.binary(max_size=4)) + frame[rest:]
    return frame[:cut] + draw(any_text.map(lambda s: s[:4])) + frame[rest:]


KEYS = ['"type"', '"\\u0074ype"', '"typ\\u0065"']
VALUES = {"ping": ['"ping"', '"p\\u0069ng"', '"\\u0070ing"'], "end": ['"end"', '"\\u0065nd"']}


@st.composite
def valid(draw: st.DrawFn) -> Frame:
    """A real message, spelled in the ways JSON allows (whitespace, escapes, a repeated key)."""
    kind = draw(st.sampled_from(list(VALUES)))
    space = st.text(" \t\r\n", max_size=3)
    pair = f"{draw(space)}{draw(st.sampled_from(KEYS))}{draw(space)}:{draw(space)}"
    text = "{" + pair + draw(st.sampled_from(VALUES[kind])) + draw(space) + "}"
    if draw(st.booleans()):
        other = "end" if kind == "ping" else "ping"
        text = '{"type": "' + other + '", ' + text[1:]  # the last of two keys wins, as in json.loads
    return text.encode() if draw(st.booleans()) else text


@st.composite
def oversized(draw: st.DrawFn) -> Frame:
    """Frames around and past the size limit; built by repetition (Hypothesis draws at most a few KiB)."""
    size = draw(st.sampled_from([MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1]) | st.integers(0, 3 * MAX_FRAME_BYTES))
    if draw(st.booleans()):  # a real message padded with JSON whitespace: accepted only up to the limit
        message = '{"type": "' + draw(st.sampled_from(REAL_TYPES)) + '"}'
        text = message + " " * max(0, size - len(message))
    else:
        piece = draw(st.text(min_size=1, max_size=4))
        text = (piece * (size // len(piece) + 1))[:size]
    return text.encode() if draw(st.booleans()) else text


frames = st.one_of(
    any_text,
    st.binary(max_size=80),
    encoded(json_values),
    encoded(typed_objects),
    malformed(),
    valid(),
    oversized(),
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(1, 10_000)),
    st.sampled_from(["", b"", "null", "{}", "[]", '"ping"', "NaN", '\ufeff{"type": "ping"}']),
)


@settings(max_examples=800, deadline=None)
@given(frames)
def test_parse_client_message_returns_a_message_or_raises_bad_message(frame: Frame) -> None:
    expected = oracle(frame)
    try:
        message = parse_client_message(frame)
    except BadMessage:
        assert expected is None, f"refused a valid {expected!r} frame"
        return
    assert message.type == expected, "accepted a frame the protocol refuses"


# The room state machine

GRACE = 10.0
ROLES = st.sampled_from([Role.HOST, Role.GUEST])
MESSAGES = st.sampled_from([Ping(type="ping")] * 3 + [End(type="end")])  # 終了 a quarter of the time


class RoomMachine(RuleBasedStateMachine):
    """Drive one :class:`Room` as the hub would, with the sockets modelled as connection ids."""

    def __init__(self) -> None:
        super().__init__()
        self.room = Room("room", "1234567", grace=GRACE)
        self.now = 0.0
        self.serial = 0
        self.used: dict[Role, list[str]] = {Role.HOST: [], Role.GUEST: []}  # every id a role ever used
        self.seated: set[str] = set()  # ids the room has handed a seat
        # Per role, the ids seated and since neither closed by an effect nor disconnected: the live sockets.
        self.open: dict[Role, set[str]] = {Role.HOST: set(), Role.GUEST: set()}
        self.ended = False
        self.guest_left = False
        self.rejoin_until: float | None = None  # a guest that pressed 終了 may come back until then
        self.rank = 0  # waiting, active, ended: only ever forwards

    def _pick(self, role: Role, index: int) -> str:
        """A connection id this role used before (current or stale), or one the room never saw."""
        used = self.used[role]
        return used[index % len(used)] if used and index >= 0 else f"{role}-stranger"

    def _apply(self, effects: list[Effect], state_before: RoomState, sender: str | None = None) -> None:
        for effect in effects:
            match effect:
                case Close(connection=connection):
                    assert connection in self.seated or connection == sender, f"closed unknown {connection}"
                    for role in Role:
                        self.open[role].discard(connection)
                case Send(to=to):
                    assert state_before != RoomState.ENDED, "an ended room sent a frame"
                    if to is not None:
                        assert to in self.open[Role.HOST] | self.open[Role.GUEST], f"sent to closed {to}"
                case StateChanged(state=state):
                    assert state != state_before and state == self.room.state
        for role in Role:
            self.open[role] = {c for c in self.open[role] if c in self.seated}

    @rule(
        seconds=st.sampled_from([0.0, 0.001, GRACE - 0.001, GRACE, GRACE + 0.001]) | st.floats(0, 3 * GRACE)
    )
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(role=ROLES)
    def connect(self, role: Role) -> None:
        self.serial += 1
        connection = f"{role}-{self.serial}"
        self.used[role].append(connection)
        before = copy.deepcopy((self.room.state, self.room.seats))
        state_before = self.room.state
        try:
            effects = self.room.connect(role, connection, self.now)
        except RoomError as refused:
            assert copy.deepcopy((self.room.state, self.room.seats)) == before, "a refusal changed the room"
            if self.ended:
                assert refused.code == CloseCode.ROOM_ENDED
            elif role == Role.GUEST and self.guest_left and self.rejoin_until is None:
                assert refused.code == CloseCode.LEFT
            elif role == Role.GUEST and self.guest_left:
                assert self.now >= (self.rejoin_until or 0.0), "refused a guest within its rejoin window"
                assert refused.code == CloseCode.REJOIN_EXPIRED
            return
        assert not self.ended, "an ended room let someone in"
        if role == Role.GUEST and self.guest_left:
            assert self.rejoin_until is not None and self.now < self.rejoin_until, (
                "a guest that left came back"
            )
            self.guest_left, self.rejoin_until = False, None
        self.seated.add(connection)
        self.open[role].add(connection)
        self._apply(effects, state_before)

    @rule(role=ROLES, index=st.integers(-1, 20))
    def disconnect(self, role: Role, index: int) -> None:
        connection = self._pick(role, index)
        state_before = self.room.state
        effects = self.room.disconnect(role, connection, self.now)
        self.open[role].discard(connection)  # the socket is gone, whatever the room makes of it
        self._apply(effects, state_before)

    @rule(role=ROLES, index=st.integers(-1, 20), message=MESSAGES)
    def receive(self, role: Role, index: int, message: Ping | End) -> None:
        connection = self._pick(role, index)
        state_before = self.room.state
        current = self.room.seats[role].connection == connection
        self._apply(self.room.receive(role, connection, message, self.now), state_before, sender=connection)
        if role == Role.GUEST and isinstance(message, End) and current and state_before != RoomState.ENDED:
            self.rejoin_until = self.now + GRACE  # 終了 by the guest: it may come back for a while

    @rule()
    def tick(self) -> None:
        state_before = self.room.state
        self._apply(self.room.tick(self.now), state_before)

    @rule(dice=st.integers(0, 9))
    def abort(self, dice: int) -> None:
        """The home task failed (the hub aborts a room only while it runs, so never an ended one)."""
        if dice == 0 and not self.ended:  # rarely: most runs should live long enough to exercise the rest
            state_before = self.room.state
            self._apply(self.room.abort(self.now), state_before)

    @invariant()
    def seats_are_consistent(self) -> None:
        room = self.room
        for role, seat in room.seats.items():
            # At most one live connection per seat, and it is the one the room knows about.
            assert (seat.connection is not None) == (seat.presence == Presence.CONNECTED)
            assert self.open[role] == ({seat.connection} if seat.connection else set()), "a connection leaked"
        rank = [RoomState.WAITING, RoomState.ACTIVE, RoomState.ENDED].index(room.state)
        assert rank >= self.rank, "the room went back a state"
        self.rank = rank
        if self.ended:
            assert room.state == RoomState.ENDED
        self.ended = room.state == RoomState.ENDED
        if self.guest_left:
            assert room.seats[Role.GUEST].presence == Presence.LEFT
        self.guest_left = room.seats[Role.GUEST].presence == Presence.LEFT
        if self.ended:
            self.rejoin_until = None

    @invariant()
    def deadline_is_exactly_the_next_rejoin_expiry(self) -> None:
        waiting = [s.since + GRACE for s in self.room.seats.values() if s.presence == Presence.RECONNECTING]
        deadline = self.room.next_deadline()
        if self.room.state == RoomState.ENDED or not waiting:
            assert deadline is None
        else:
            assert deadline == min(waiting)


TestRoomMachine = RoomMachine.TestCase
TestRoomMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# The live server


@pytest.fixture(name="settings", params=BACKENDS)
def backend_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """As in test_joining, with room for one new number per burst on top of the issuing limit, and no
    per-connection message rate in the way (the manual clock never refills it; tests/abuse tests it)."""
    unlimited = replace(
        settings, number_issues_per_10_minutes=1000, room_messages_per_second=1e9, room_message_burst=10**9
    )
    return on_backend(request, unlimited)


class Noisy:
    """The host's socket in the room under fire, with an exact count of what the server owes it.

    Every bad frame is owed an ``error``, every valid ping a ``pong``; the ``MAX_BAD_FRAMES``-th bad frame
    on one socket is owed a close with 1008 (POLICY_VIOLATION), after which a new socket is opened.
    """

    def __init__(self, browser: Browser, path: str) -> None:
        self.browser, self.path = browser, path
        self.sockets: list[ClientConnection] = []

    async def open(self) -> None:
        self.ws = await self.browser.websocket(self.path, V1)
        self.sockets.append(self.ws)
        self.bad = self.pings = self.errors = self.pongs = 0
        await receive_type(self.ws, "welcome")

    async def send(self, frame: Frame, ping: bool) -> None:
        await self.ws.send(frame)
        if ping:
            self.pings += 1
            return
        self.bad += 1
        if self.bad == MAX_BAD_FRAMES:
            with pytest.raises(ConnectionClosed) as closed:
                await self._read_until(lambda: False)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.POLICY_VIOLATION
            assert self.errors == MAX_BAD_FRAMES and self.pongs <= self.pings
            await self.ws.close()
            await self.open()

    async def settle(self) -> None:
        """Still served: a ping gets its pong, and every frame so far got exactly its answer."""
        await self.send('{"type": "ping"}', ping=True)
        await self._read_until(lambda: self.errors == self.bad and self.pongs == self.pings)
        assert (self.errors, self.pongs) == (self.bad, self.pings)

    async def _read_until(self, done: Callable[[], bool]) -> None:
        for _ in range(self.bad + self.pings + 20):
            if done():
                return
            frame = await receive(self.ws, within=5.0)
            if frame["type"] == "error":
                assert frame["code"] == "bad_message" and frame["message"]
                self.errors += 1
            elif frame["type"] == "pong":
                self.pongs += 1
            else:  # its own earlier socket going and coming, and the document state sent on each connect
                assert frame["type"] in ("presence", "doc.state"), frame
        raise AssertionError(f"no answer: {self.errors}/{self.bad} errors, {self.pongs}/{self.pings} pongs")


@dataclass
class Channels:
    a: str
    b: str
    noisy: Noisy
    calm: ClientConnection


@pytest.fixture
async def channels(server: LiveServer, host: Browser, guest: Browser) -> AsyncIterator[Channels]:  # noqa: F811
    """Rooms A and B of one host, with the host's socket open in both (kept across Hypothesis examples)."""
    other = Browser(server.url)
    await other.open("/")
    a = (await start(host, await issue(guest)))["room_id"]
    b = (await start(host, await issue(other)))["room_id"]
    noisy = Noisy(host, f"/ws/rooms/{a}")
    await noisy.open()
    calm = await host.websocket(f"/ws/rooms/{b}", V1)
    try:
        await receive_type(calm, "welcome")
        await receive_type(calm, "doc.state")  # sent on every connect; B then hears only its own answers
        yield Channels(a, b, noisy, calm)
    finally:
        for ws in [*noisy.sockets, calm]:
            await ws.close()
        await other.aclose()


class Wire:
    """One frame for room A's socket, and whether it is a valid ping. Not a dataclass: Hypothesis would
    print all of a huge frame in a failure report (and, past 50 kB, warn instead of reporting)."""

    def __init__(self, frame: Frame, ping: bool) -> None:
        self.frame, self.ping = frame, ping

    def __repr__(self) -> str:
        more = f" (+{len(self.frame) - 60} more)" if len(self.frame) > 60 else ""
        return f"Wire({self.frame[:60]!r}{more}, ping={self.ping})"


def live_frame(frame: Frame) -> Wire | None:
    """``frame`` as the host may send it into room A; None for a real message other than a ping (終了 would
    end A by design; the document messages have their own tests). Text with a lone surrogate is no text
    frame: it goes as (non-UTF-8) bytes. The channel takes text frames only, so every binary frame, even one
    holding a valid message, is owed an error."""
    if isinstance(frame, str):
        try:
            frame.encode("utf-8")
        except UnicodeEncodeError:
            frame = frame.encode("utf-8", "surrogatepass")
    if isinstance(frame, bytes):
        return Wire(frame, ping=False)
    kind = oracle(frame)
    if kind not in (None, "ping"):
        return None
    return Wire(frame, ping=kind == "ping")


live_frames = st.one_of(frames, valid(), oversized()).map(live_frame)  # more pings than ``frames`` alone
bursts = st.lists(live_frames, min_size=15, max_size=40).map(lambda fs: [f for f in fs if f])


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the server carries state from one burst on
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(burst=bursts)
async def test_random_frames_never_crash_the_server_or_reach_another_room(
    server: LiveServer,  # noqa: F811
    channels: Channels,
    caplog: pytest.LogCaptureFixture,
    burst: list[Wire],
) -> None:
    caplog.set_level(logging.ERROR)
    caplog.clear()  # per example: the fixtures (and the server) live across examples
    for wire in burst:
        await channels.noisy.send(wire.frame, wire.ping)
    await channels.noisy.settle()  # room A: still served, or was closed only with 1008 (then reopened)

    await channels.calm.send('{"type": "ping"}')  # room B: heard nothing of it, and still answers
    assert await receive(channels.calm, within=1.0) == {"type": "pong"}
    newcomer = Browser(server.url)
    try:
        assert (await newcomer.open("/healthz")).status_code == 200
        await newcomer.open("/")
        await issue(newcomer)  # a new guest can still get a number
    finally:
        await newcomer.aclose()
    hub = services(server.app).hub
    assert hub.is_home(channels.a) and hub.is_home(channels.b), "a room's home task died"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
