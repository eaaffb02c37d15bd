"""The benches' typing is what a browser would send: a bench whose keystrokes the server refuses measures the
refusals (bench.cluster did, until its keystrokes were inserted at UTF-8 byte positions, as pycrdt counts)."""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Doc, Text

from bench.cluster import keystrokes
from signaling.memo import UPDATE, SharedMemo, decode, parse_sync_message


def test_the_cluster_benchs_keystrokes_are_all_taken_and_spell_the_typed_text() -> None:
    frames = keystrokes(40)  # past the first non-ASCII character several times over ("あいうえおabc")
    memo = SharedMemo()
    peer: Doc[Any] = Doc()
    peer["memo"] = text = Text()
    for frame in frames:
        message = decode(json.loads(frame)["data"])
        kind, payload = parse_sync_message(message)
        assert kind == UPDATE
        result = memo.receive(message)  # raises MemoRefused (out of step) for a keystroke Yjs would not take
        assert result.update == payload
        peer.apply_update(payload)
    assert str(text) == "あいうえおabc" * 5
