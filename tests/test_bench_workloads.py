"""The benches' typing is what a browser would send: a bench whose keystrokes the server refuses measures the
refusals (bench.cluster did, until its keystrokes were inserted at UTF-8 byte positions, as pycrdt counts);
and the baselines the memo is set against do what they stand for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

from bench.cluster import keystrokes
from bench.memo import _relay_clients
from bench.servers import baselines
from signaling.memo import UPDATE, SharedMemo, decode, parse_sync_message
from tests.harness.live import LiveServer


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


@pytest.fixture
def baselines_url() -> Iterator[str]:
    server = LiveServer(baselines())
    server.start()
    try:
        yield server.url.replace("http", "ws", 1)
    finally:
        server.stop()


async def test_the_relay_hands_each_frame_to_the_other_socket_of_its_pair_only(baselines_url: str) -> None:
    # bench.memo sets the memo's CPU against this floor: it must do a room's hand-off and nothing more.
    async with (
        connect(f"{baselines_url}/relay/a") as first,
        connect(f"{baselines_url}/relay/a") as second,
        connect(f"{baselines_url}/relay/b") as alone,
    ):
        await first.send("x")
        assert await asyncio.wait_for(second.recv(), 5) == "x"
        await second.send("y")
        assert await asyncio.wait_for(first.recv(), 5) == "y"  # not its own "x" back
        await alone.send("z")  # nobody else in pair b yet: goes nowhere
        async with connect(f"{baselines_url}/relay/b") as other:
            await other.send("w")
            assert await asyncio.wait_for(alone.recv(), 5) == "w"
            await alone.send("v")
            assert await asyncio.wait_for(other.recv(), 5) == "v"  # neither "x", "y" nor the earlier "z"


async def test_the_relay_clients_time_every_frame_each_side_sends(baselines_url: str) -> None:
    samples, (started, ended) = await _relay_clients(
        f"{baselines_url}/relay/", pairs=3, rate=20, seconds=0.2, deflate=False
    )
    assert len(samples) == 3 * 2 * 4  # 3 pairs, both sides, 4 frames each
    assert all(0 <= sample < 5 for sample in samples) and started < ended
