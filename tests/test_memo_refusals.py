"""共有メモ: updates Yjs and pycrdt would not take the same way are refused and change nothing (sans I/O).

The crafted updates in ``YJS`` were made by yjs 13.6 in Node with the memo's old UTF-16 diff (they are what a
browser sent before the fix); tests/test_memo_interop.py makes them again through the real server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from signaling.memo import STEP1, STEP2, UPDATE, parse_sync_message, sync_message
from signaling.protocol import (
    ErrorCode,
    ErrorFrame,
    MemoAwareness,
    MemoAwarenessOut,
    MemoSync,
    MemoSyncOut,
    Role,
)
from signaling.room import MemoUpdated, Room, Send
from signaling.yjs_update import read_state_vector, read_update
from tests.helpers import sent
from tests.test_memo import Client, active_room, b64

YJS = {
    # "😀😁" by client 1, then delete(1, 2): the old diff after backspacing the first emoji
    "two_emoji": "010101000401046d656d6f08f09f9880f09f988100",
    "backspace_first": "000101010102",
    # "😀" by client 2, then insert(1, "\udc4d\ud83d"): the old diff after typing 👍 right before 😀
    "one_emoji": "010102000401046d656d6f04f09f988000",
    "thumbs_up_before": "01010202c40200020106efbfbdefbfbd00",
    # an awareness update: client 7, clock 2, {"role": "guest", "cursor": {...}}
    "awareness": (
        "0107025e7b22726f6c65223a226775657374222c22637572736f72223a7b2274797065223a6e756c6c2c22746e61"
        "6d65223a226d656d6f222c226974656d223a7b22636c69656e74223a372c22636c6f636b223a337d2c226173736f63"
        "223a307d7d"
    ),
}


def var_uint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def string_item(client: int, clock: int, text: bytes, origin: tuple[int, int] | None = None) -> bytes:
    """A one-item update inserting ``text`` (raw bytes, so they may be broken) into the memo."""
    if origin is None:
        struct = b"\x04" + var_uint(1) + var_bytes(b"memo") + var_bytes(text)
    else:
        struct = b"\x84" + var_uint(origin[0]) + var_uint(origin[1]) + var_bytes(text)
    return var_uint(1) + var_uint(1) + var_uint(client) + var_uint(clock) + struct + var_uint(0)


def deletion(client: int, clock: int, length: int) -> bytes:
    return var_uint(0) + var_uint(1) + var_uint(client) + var_uint(1) + var_uint(clock) + var_uint(length)


def send(room: Room, update: bytes, role: Role = Role.GUEST) -> list[Any]:
    connection = "g1" if role == Role.GUEST else "h1"
    data = b64(sync_message(UPDATE, update))
    return room.receive(role, connection, MemoSync(type="memo.sync", data=data), now=1)


def refused_with(effects: list[Any], code: ErrorCode) -> list[Any]:
    """The effects hold an error frame with ``code`` for the sender, nothing stored or forwarded."""
    errors = [e.message for e in effects if isinstance(e, Send) and isinstance(e.message, ErrorFrame)]
    assert [error.code for error in errors] == [code], effects
    assert all(isinstance(e, Send) and e.to is not None for e in effects)
    assert not any(isinstance(e, MemoUpdated) for e in effects)
    return [e for e in effects if not isinstance(e.message, ErrorFrame)]


def unchanged(room: Room, text: str, state: bytes) -> None:
    assert room.memo.text() == text and room.memo.doc.get_state() == state


def test_the_old_diffs_cutting_an_emoji_in_two_are_refused() -> None:
    room = active_room()
    assert any(isinstance(e, MemoUpdated) for e in send(room, bytes.fromhex(YJS["two_emoji"])))
    state = room.memo.doc.get_state()
    refused_with(send(room, bytes.fromhex(YJS["backspace_first"])), ErrorCode.MEMO_BROKEN_TEXT)
    unchanged(room, "😀😁", state)
    send(room, bytes.fromhex(YJS["one_emoji"]), Role.HOST)
    state = room.memo.doc.get_state()
    text = room.memo.text()
    refused_with(send(room, bytes.fromhex(YJS["thumbs_up_before"])), ErrorCode.MEMO_BROKEN_TEXT)
    unchanged(room, text, state)
    # Whole characters are fine: delete both units of 😀 (clock 0, length 2).
    assert any(isinstance(e, MemoUpdated) for e in send(room, deletion(1, 0, 2)))
    assert "😁" in room.memo.text() and "😀😁" not in room.memo.text()


def test_lone_surrogates_and_other_broken_utf8_are_refused() -> None:
    room = active_room()
    room.memo.insert(0, "keep")
    state, text = room.memo.doc.get_state(), room.memo.text()
    for raw in (
        "a\ud83d".encode("utf-8", "surrogatepass"),
        "\ude00".encode("utf-8", "surrogatepass"),
        b"\xff",
    ):
        refused_with(send(room, string_item(42, 0, raw)), ErrorCode.MEMO_BROKEN_TEXT)
        unchanged(room, text, state)


def test_an_update_past_the_senders_clock_is_refused_and_the_sender_brought_back_in_step() -> None:
    room = active_room()
    guest = Client()
    send(room, parse_sync_message(base64.b64decode(guest.edit(0, "一").data))[1])
    lost = guest.edit(1, "二")  # never arrives
    later = parse_sync_message(base64.b64decode(guest.edit(2, "三").data))[1]
    del lost
    state = room.memo.doc.get_state()
    rest = refused_with(send(room, later), ErrorCode.MEMO_OUT_OF_STEP)
    unchanged(room, "一", state)
    # The server's step 1 follows the error; the guest's answer (step 2) brings everything.
    [step1] = [e.message.data for e in rest if isinstance(e.message, MemoSyncOut)]
    assert parse_sync_message(base64.b64decode(step1))[0] == STEP1
    answer = guest.receive(step1)
    assert answer is not None
    effects = room.receive(Role.GUEST, "g1", answer, now=2)
    assert room.memo.text() == "一二三" and any(isinstance(e, MemoUpdated) for e in effects)


@pytest.mark.parametrize(
    "update",
    [
        string_item(5, 0, b"x", origin=(6, 0)),  # after an item the server has not got
        string_item(5, 0, b"x", origin=(5, 0)),  # after itself
        deletion(1, 0, 1),  # deletes what the server has not got
        string_item(5, 0, b"ab") + b"",  # fine on its own (checked below)
    ],
)
def test_updates_that_would_stay_pending_are_refused(update: bytes) -> None:
    room = active_room()
    effects = send(room, update)
    if update == string_item(5, 0, b"ab"):
        assert room.memo.text() == "ab" and any(isinstance(e, MemoUpdated) for e in effects)
        return
    refused_with(effects, ErrorCode.MEMO_OUT_OF_STEP)
    unchanged(room, "", Doc().get_state())


def test_a_gap_left_by_merged_updates_is_refused() -> None:
    room = active_room()
    first = string_item(9, 0, b"ab")
    skip = var_uint(1) + var_uint(2) + var_uint(9) + var_uint(0) + b"\x0a" + var_uint(2)
    skip += b"\x84" + var_uint(9) + var_uint(1) + var_bytes(b"c") + var_uint(0)
    refused_with(send(room, skip), ErrorCode.MEMO_OUT_OF_STEP)
    send(room, first)
    assert room.memo.text() == "ab"


def test_content_other_than_the_memos_text_is_refused() -> None:
    room = active_room()
    other_root = var_uint(1) + var_uint(1) + var_uint(3) + var_uint(0)
    other_root += b"\x04" + var_uint(1) + var_bytes(b"other") + var_bytes(b"x") + var_uint(0)
    formatted = var_uint(1) + var_uint(1) + var_uint(3) + var_uint(0)
    formatted += (
        b"\x06" + var_uint(1) + var_bytes(b"memo") + var_bytes(b"bold") + var_bytes(b"true") + var_uint(0)
    )
    for update in (other_root, formatted):
        refused_with(send(room, update), ErrorCode.MEMO_NOT_TEXT)
        unchanged(room, "", Doc().get_state())


@pytest.mark.parametrize(
    "update",
    [
        var_uint(1) + var_uint(1) + var_uint(2**53) + var_uint(0) + b"\x04\x01\x04memo\x01x\x00",  # a JS
        # client id must be a safe integer
        string_item(5, 0, b"x")[:-1] + var_uint(1) + var_uint(1) + var_uint(2**60) + var_uint(1),
        string_item(5, 0, b"x") + b"\x00",  # trailing bytes
        string_item(5, 0, b"x")[:-2],  # truncated
        var_uint(2) + string_item(5, 0, b"x")[1:-1] + string_item(5, 1, b"y")[1:],  # a client twice
    ],
)
def test_unreadable_updates_are_bad_messages(update: bytes) -> None:
    room = active_room()
    refused_with(send(room, update), ErrorCode.BAD_MESSAGE)
    unchanged(room, "", Doc().get_state())


def test_a_known_start_cut_off_inside_an_emoji_is_refused() -> None:
    room = active_room()
    # Clock 0 of client 8 is known as deleted content; a struct from clock 0 with "😀…" would be cut after
    # its first unit, between the halves of 😀.
    deleted = (
        var_uint(1) + var_uint(1) + var_uint(8) + var_uint(0) + b"\x01" + var_uint(1) + var_bytes(b"memo")
    )
    deleted += var_uint(1) + var_uint(0)
    send(room, deleted)
    state = room.memo.doc.get_state()
    refused_with(send(room, string_item(8, 0, "😀x".encode())), ErrorCode.MEMO_BROKEN_TEXT)
    unchanged(room, "", state)


# Awareness


def awareness(client: int, state: object, clock: int = 1, raw: str | None = None) -> str:
    body = (raw if raw is not None else json.dumps(state)).encode()
    return b64(var_uint(1) + var_uint(client) + var_uint(clock) + var_bytes(body))


def test_awareness_is_decoded_before_it_is_relayed() -> None:
    room = active_room()
    good = [
        b64(bytes.fromhex(YJS["awareness"])),
        awareness(7, None),  # gone
        awareness(7, {"cursor": None}),
    ]
    for data in good:
        effects = room.receive(Role.GUEST, "g1", MemoAwareness(type="memo.awareness", data=data), now=1)
        relayed = sent(effects, MemoAwarenessOut)
        assert len(effects) == 1 and [(s.message.data, s.exclude) for s in relayed] == [(data, "g1")]
    bad = [
        b64(b"\x01\x02"),  # truncated
        b64(bytes.fromhex(YJS["awareness"]) + b"\x00"),  # trailing bytes
        b64(b"\x00"),  # nobody
        awareness(7, {"role": "host"}),  # speaking for the other side
        awareness(7, [1, 2]),
        awareness(7, None, raw='{"a": NaN}'),  # JSON.parse would throw
        awareness(7, None, raw="{"),
        awareness(2**53, {}),
        b64(var_uint(1) + var_uint(7) + var_uint(1) + var_bytes(b"\xed\xa0\xbd")),
        "%%%",
    ]
    for data in bad:
        effects = room.receive(Role.GUEST, "g1", MemoAwareness(type="memo.awareness", data=data), now=1)
        assert [(s.message.code, s.to) for s in sent(effects, ErrorFrame)] == [(ErrorCode.BAD_MESSAGE, "g1")]
        assert len(effects) == 1, data


# Whatever is sent: refused and unchanged, or taken whole (nothing left pending)


def valid_updates(edits: list[tuple[int, str, int]]) -> tuple[list[bytes], Doc[Any]]:
    doc: Doc[Any] = Doc(client_id=4242)  # the same bytes on every run, as hypothesis needs
    doc["memo"] = text = Text()
    updates = []
    for position, insert, delete in edits:
        before = doc.get_state()
        current = str(text)
        start = len(current[: min(position, len(current))].encode())
        end = len(current[: min(position, len(current)) + delete].encode())
        with doc.transaction():
            if end > start:
                del text[start:end]
            if insert:
                text.insert(start, insert)
        updates.append(doc.get_update(before))
    return updates, doc


edits = st.lists(
    st.tuples(st.integers(0, 12), st.text("aあ😀👍🏽é\n", max_size=4), st.integers(0, 3)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits, st.data())
def test_any_update_is_refused_unchanged_or_taken_whole(plan: list[tuple[int, str, int]], data: Any) -> None:
    updates, _ = valid_updates(plan)
    room = active_room()
    keep = data.draw(st.integers(0, len(updates)))
    for update in updates[:keep]:
        send(room, update)
    chosen = bytearray(data.draw(st.sampled_from(updates)))
    for _ in range(data.draw(st.integers(0, 3))):
        if chosen:
            chosen[data.draw(st.integers(0, len(chosen) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()) and chosen:
        del chosen[data.draw(st.integers(0, len(chosen) - 1)) :]
    text, state = room.memo.text(), room.memo.doc.get_state()
    effects = send(room, bytes(chosen))
    if any(isinstance(e, MemoUpdated) for e in effects):
        after = read_state_vector(room.memo.doc.get_state())
        for struct in read_update(bytes(chosen)).structs:
            assert after.get(struct.client, 0) >= struct.end  # nothing pending
    else:
        unchanged(room, text, state)
    step2 = sync_message(STEP2, b"\x00\x00")
    assert room.receive(Role.HOST, "h1", MemoSync(type="memo.sync", data=b64(step2)), now=2) == []
