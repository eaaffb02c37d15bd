"""The keystroke lane: a ``memo.sync`` or ``memo.awareness`` frame in the form browsers send it is read
without the validator (signaling/protocol.py ``memo_sync_data``, ``memo_awareness_data``), and its copy is
built without it (``memo_sync_out``, ``memo_awareness_out``). Both must give exactly what the validated path
gives, and browsers' frames must take the lane."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from signaling.memo import STEP1, UPDATE, encode, sync_message
from signaling.protocol import (
    MAX_FRAME_BYTES,
    BadMessage,
    MemoAwareness,
    MemoAwarenessOut,
    MemoSync,
    MemoSyncOut,
    Role,
    memo_awareness_data,
    memo_awareness_out,
    memo_sync_data,
    memo_sync_out,
    parse_client_message,
)
from signaling.room import Room
from tests.harness.yjs import ROOT, node
from tests.test_memo_refusals import awareness

Lane = tuple[Callable[[str], str | None], type[MemoSync] | type[MemoAwareness]]
LANES: dict[str, Lane] = {
    "memo.sync": (memo_sync_data, MemoSync),
    "memo.awareness": (memo_awareness_data, MemoAwareness),
}

CANONICAL = '{"type":"memo.sync","data":"AgEAAA=="}'

NOT_IN_THE_LANE = [
    '{"type": "memo.sync", "data": "AgEAAA=="}',  # Python's json.dumps: spaces
    '{"data":"AgEAAA==","type":"memo.sync"}',  # other order
    '{"type":"memo.sync","data":"AgEAAA==","x":1}',  # another key (the validator refuses it)
    '{"type":"memo.sync","data":"Ag\\u0045AAA=="}',  # an escape: JSON reads it as "AgEAAA=="
    '{"type":"memo.sync","data":"Ag\\/EAAA=="}',
    '{"type":"memo.sync","data":"AgE"AA=="}',  # broken JSON
    '{"type":"memo.sync","data":"AgE AA=="}',  # not base64
    '{"type":"memo.sync","data":"AgE\tAA=="}',  # a raw control character (invalid JSON)
    '{"type":"memo.sync","data":"}',  # the prefix's quote is not the suffix's
    '{"type":"memo.sync","data":"' + "A" * MAX_FRAME_BYTES + '"}',  # too big
    '{"type":"memo.awareness","data":"AgEAAA=="}',
    '{"type":"memo.sync","data":"AgEAAA=="} ',
    ' {"type":"memo.sync","data":"AgEAAA=="}',
    '{"type":"memo.sync","data":"あ"}',
]


def _validated(frame: str, kind: type[MemoSync] | type[MemoAwareness]) -> str | None:
    """What the validated path makes of ``frame``: the data of a message of ``kind``, or None."""
    try:
        message = parse_client_message(frame)
    except BadMessage:
        return None
    return message.data if isinstance(message, MemoSync | MemoAwareness) and type(message) is kind else None


def test_the_lane_takes_the_browsers_form_and_gives_what_the_validator_gives() -> None:
    assert memo_sync_data(CANONICAL) == "AgEAAA=="
    assert memo_sync_data('{"type":"memo.sync","data":""}') == ""  # the room refuses it, as before
    for frame in NOT_IN_THE_LANE:
        assert memo_sync_data(frame) is None, frame
    caret = '{"type":"memo.awareness","data":"AQEBAm51bGw="}'
    assert memo_awareness_data(caret) == "AQEBAm51bGw=" and memo_sync_data(caret) is None
    assert memo_awareness_data(CANONICAL) is None
    for frame in NOT_IN_THE_LANE:
        if "memo.awareness" not in frame:
            assert memo_awareness_data(frame.replace("memo.sync", "memo.awareness")) is None, frame


@pytest.mark.parametrize("kind", LANES)
def test_whatever_the_lane_takes_the_validator_takes_the_same_way(kind: str) -> None:
    # Random edits of browser frames (a character changed, dropped or added anywhere): the lane either
    # leaves a frame to the validator or reads it exactly as the validator does.
    lane, message = LANES[kind]
    rng = random.Random(17)
    alphabet = 'AZaz09+/=" \\{}:,.tu\t\x00あ'
    taken = 0
    for _ in range(5000):
        data = encode(rng.randbytes(rng.randrange(0, 40)))
        frame = list(json.dumps({"type": kind, "data": data}, separators=(",", ":")))
        for _ in range(rng.randrange(0, 3)):
            where = rng.randrange(len(frame) + 1)
            match rng.randrange(3):
                case 0 if where < len(frame):
                    frame[where] = rng.choice(alphabet)
                case 1 if where < len(frame):
                    del frame[where]
                case _:
                    frame.insert(where, rng.choice(alphabet))
        text = "".join(frame)
        read = lane(text)
        if read is not None:
            taken += 1
            assert read == _validated(text, message), text
    assert taken > 1000  # most frames are left whole or stay valid base64


def test_the_copy_built_without_validation_equals_the_validated_one() -> None:
    for data in ("", "AgEAAA==", encode(bytes(range(200)))):
        pairs: list[tuple[MemoSyncOut | MemoAwarenessOut, MemoSyncOut | MemoAwarenessOut]] = [
            (memo_sync_out(data), MemoSyncOut(data=data)),
            (memo_awareness_out(data), MemoAwarenessOut(data=data)),
        ]
        for quick, validated in pairs:
            assert type(quick) is type(validated)
            _same(quick, validated)


def _same(quick: MemoSyncOut | MemoAwarenessOut, validated: MemoSyncOut | MemoAwarenessOut) -> None:
    assert quick == validated and hash(quick) == hash(validated)
    assert quick.model_dump_json() == validated.model_dump_json()
    assert quick.model_dump() == validated.model_dump()
    assert quick.model_fields_set == validated.model_fields_set
    with pytest.raises(ValidationError):  # frozen, as the validated one
        quick.data = "x"


def test_the_room_answers_the_lane_as_it_answers_the_message() -> None:
    rooms = [Room("r", "1"), Room("r", "1")]
    for room in rooms:
        room.connect(Role.HOST, "h1", 0)
        room.connect(Role.GUEST, "g1", 0)
    from pycrdt import Doc, Text

    doc: Doc[Text] = Doc()
    doc["memo"] = text = Text()
    frames = [encode(sync_message(STEP1, b"\x00")), "not base64!", encode(b"\x02\x05ab")]
    for ch in "こんにちは":
        before = doc.get_state()
        text += ch
        frames.append(encode(sync_message(UPDATE, doc.get_update(before))))
    for data in frames:
        by_lane = rooms[0].receive_memo(Role.HOST, "h1", data, 1.0)
        by_message = rooms[1].receive(Role.HOST, "h1", MemoSync(type="memo.sync", data=data), 1.0)
        assert by_lane == by_message
    assert rooms[0].memo.text() == rooms[1].memo.text() == "こんにちは"
    carets = [awareness(7, {"cursor": None}), awareness(7, {"role": "host"}), "AQ"]  # relayed, refused, bad
    for data in carets:
        by_lane = rooms[0].receive_awareness(Role.GUEST, "g1", data, 1.0)
        by_message = rooms[1].receive(Role.GUEST, "g1", MemoAwareness(type="memo.awareness", data=data), 1.0)
        assert by_lane == by_message
    # A replaced connection and an ended room are answered the same way too.
    assert rooms[0].receive_memo(Role.HOST, "old", frames[-1], 2.0) == rooms[1].receive(
        Role.HOST, "old", MemoSync(type="memo.sync", data=frames[-1]), 2.0
    )
    assert rooms[0].receive_awareness(Role.HOST, "old", carets[0], 2.0) == rooms[1].receive(
        Role.HOST, "old", MemoAwareness(type="memo.awareness", data=carets[0]), 2.0
    )


def test_the_browsers_memo_frames_take_the_lane() -> None:
    # memo-sync.js as the call page runs it: its frames go through JSON.stringify (call.js).
    script = """
    import { MemoSync } from "./web/static/src/memo-sync.js";
    const frames = [];
    const memo = new MemoSync((frame) => frames.push(JSON.stringify(frame)), "host");
    memo.connected();
    memo.synced = true;
    memo.edit(0, 0, "お見積もり");
    memo.edit(2, 1, "😀");
    memo.destroy();
    process.stdout.write(JSON.stringify(frames));
    """
    result = subprocess.run(
        [node(), "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    frames = json.loads(result.stdout)
    kinds = [json.loads(frame)["type"] for frame in frames]
    assert kinds.count("memo.sync") >= 3 and "memo.awareness" in kinds  # step 1, the edits, the caret
    for frame in frames:
        lane, _message = LANES[json.loads(frame)["type"]]
        assert lane(frame) == json.loads(frame)["data"], frame
