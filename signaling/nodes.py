"""The node registry: which nodes are alive (a heartbeat in Redis), how loaded each is, which have died.

Each node writes its load (rooms homed on it) into one Redis hash every :data:`HEARTBEAT_SECONDS` and renews
its own key, which expires :data:`HEARTBEAT_TTL_SECONDS` after the last beat: a node whose key is gone but
whose entry is still in the hash has died without saying so (SIGKILL, a lost box). A node that stops cleanly
removes both. Placement asks :meth:`NodeRegistry.least_loaded`; adoption of a dead node's rooms (issue 17)
starts from :meth:`NodeRegistry.dead` (signaling/homes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("tsunagu.nodes")

HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_SECONDS = 8.0  # a node is dead this long after its last beat (four beats missed)
NODES = "tsunagu:nodes"


def _alive_key(node_id: str) -> str:
    return f"tsunagu:node:{node_id}:alive"


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    load: int


class NodeRegistry:
    def __init__(
        self,
        redis: Any,
        node_id: str,
        load: Callable[[], int],
        *,
        every: float = HEARTBEAT_SECONDS,
        ttl: float = HEARTBEAT_TTL_SECONDS,
        on_lapsed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        self.load = load
        self.every = every
        self.ttl = ttl
        self._task: asyncio.Task[None] | None = None
        # Called when a beat finds this node's own key gone: others may have taken it for dead (a loop
        # blocked past the ttl) and adopted its rooms, which it must then let go (signaling/homes.py).
        self.on_lapsed = on_lapsed
        self._beaten = False

    async def beat(self) -> bool:
        """Say this node is alive, with its load, for the next ``ttl`` seconds; True when its key had
        lapsed since its previous beat (it looked dead meanwhile)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(NODES, self.node_id, json.dumps({"load": self.load()}))
            pipe.set(_alive_key(self.node_id), "1", px=int(self.ttl * 1000), get=True)
            _, previous = await pipe.execute()
        lapsed = self._beaten and previous is None
        self._beaten = True
        return lapsed

    def start(self) -> None:
        self._task = asyncio.create_task(self._beating(), name="node-heartbeat")

    async def _beating(self) -> None:
        while True:
            try:
                if await self.beat() and self.on_lapsed is not None:
                    log.warning("node.heartbeat_lapsed", node=self.node_id)
                    await self.on_lapsed()
            except Exception as exc:  # Redis away for a moment: beat again on the next round
                log.warning("node.heartbeat_failed", node=self.node_id, error=repr(exc))
            await asyncio.sleep(self.every)

    async def _entries(self) -> tuple[list[NodeInfo], list[NodeInfo]]:
        """(alive, dead) nodes of the hash."""
        entries = await self.redis.hgetall(NODES)
        nodes = [
            NodeInfo(node.decode() if isinstance(node, bytes) else node, int(json.loads(value)["load"]))
            for node, value in entries.items()
        ]
        if not nodes:
            return [], []
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.exists(_alive_key(node.node_id))
            alive = await pipe.execute()
        return [n for n, a in zip(nodes, alive, strict=True) if a], [
            n for n, a in zip(nodes, alive, strict=True) if not a
        ]

    async def alive(self) -> list[NodeInfo]:
        return (await self._entries())[0]

    async def dead(self) -> list[NodeInfo]:
        """Nodes whose heartbeat lapsed without a clean stop: their rooms are to be adopted."""
        return (await self._entries())[1]

    async def least_loaded(self) -> str:
        """The live node with the fewest rooms (this node when none is registered yet)."""
        nodes = await self.alive()
        if not nodes:
            return self.node_id
        return min(nodes, key=lambda n: (n.load, n.node_id)).node_id

    async def forget(self, node_id: str) -> None:
        """Drop a dead node's entry (once its rooms are adopted)."""
        await self.redis.hdel(NODES, node_id)

    async def aclose(self) -> None:
        """Stop beating and leave the registry at once (a clean stop is not a death)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(NODES, self.node_id)
                pipe.delete(_alive_key(self.node_id))
                await pipe.execute()
