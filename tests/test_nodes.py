"""The node registry (signaling/nodes.py) against a real redis-server: load, placement, a lapsed heartbeat."""

from __future__ import annotations

import asyncio
from typing import Any

from signaling.nodes import NodeRegistry


async def test_nodes_register_the_least_loaded_is_chosen_and_a_silent_one_is_dead(redis: Any) -> None:
    loads = {"a": 3, "b": 1}
    a = NodeRegistry(redis, "a", lambda: loads["a"], ttl=10)
    b = NodeRegistry(redis, "b", lambda: loads["b"], ttl=0.3)  # b's heartbeat lapses 0.3 s after a beat
    await asyncio.gather(a.beat(), b.beat())  # at once
    assert {n.node_id: n.load for n in await a.alive()} == {"a": 3, "b": 1}
    assert await a.least_loaded() == "b"
    loads["a"] = 0
    await a.beat()
    assert await b.least_loaded() == "a"
    # b stops beating without a clean stop (a SIGKILL): once its key expires it is dead, not alive.
    for _ in range(100):  # bounded: 10 s
        if [n.node_id for n in await a.dead()] == ["b"]:
            break
        await asyncio.sleep(0.1)
    assert [n.node_id for n in await a.dead()] == ["b"]
    assert [n.node_id for n in await a.alive()] == ["a"]
    await a.forget("b")
    assert await a.dead() == []
    # A clean stop leaves at once, and is not a death.
    a.start()
    await a.aclose()
    assert await a.alive() == [] and await a.dead() == []


async def test_a_beat_after_the_key_lapsed_says_so(redis: Any) -> None:
    node = NodeRegistry(redis, "slow", lambda: 0, ttl=0.2)
    assert not await node.beat()  # the first beat: nothing to have lapsed
    assert not await node.beat()  # in time
    for _ in range(100):  # bounded: 10 s; the loop "blocked" past the ttl
        if [n.node_id for n in await node.dead()] == ["slow"]:
            break
        await asyncio.sleep(0.05)
    assert await node.beat()  # others may have adopted its rooms meanwhile
    assert not await node.beat()
