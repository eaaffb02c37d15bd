"""One pipeline for what a node's tasks send to Redis meanwhile: many rooms' frames and events, one trip.

Every frame a room's home sends to a socket on another node is a ``PUBLISH``, and every event a socket sends
to a home on another node an ``XADD`` (:mod:`signaling.redis_broker`, :mod:`signaling.redis_queues`). Sent
one by one, each costs a connection taken from the pool and given back, a write to the socket and a wait for
its reply: most of a node's CPU per keystroke when a room's two sides are on two nodes (bench/cluster.py).

:class:`Batcher` sends them together instead. ``await batcher.execute(command, ...)`` queues the caller's
commands and waits for their replies; ONE task per node takes everything queued while the previous batch was
on its way, and what the tasks ready in the same turn of the event loop add, and sends it as one pipeline
(``transaction=False``: one write, the replies read in order). So a quiet node sends each command after one
turn of the loop, alone, and a busy one sends tens of them per round trip.

The contract, what callers rely on:

- **Order.** Commands are sent in the order :meth:`Batcher.execute` was called, so one caller's commands
  (one ``await`` after the other, or the commands of one call) reach Redis in its order.
- **Errors as before.** ``execute`` raises what redis-py raises for the same commands sent alone: the
  connection's error (``ConnectionError``, ``TimeoutError``, ``OSError``) to every caller whose commands were
  in that batch, and a command's own error (``ResponseError``) to its caller only. A caller that retries
  sends its commands again in a later batch.
- **Cancellation.** A caller cancelled before its batch is sent sends nothing; once sent, its commands run.
- :meth:`Batcher.submit` queues at once and returns the replies' future, for a caller that cannot wait.
- **Bounded.** A pipeline not answered within :data:`PIPELINE_TIMEOUT` seconds fails its callers with
  redis-py's ``TimeoutError`` (its connection is dropped). One pipeline is on its way at a time, so a stalled
  one would otherwise hold up every room of the node for redis-py's socket timeout and retries.
- :meth:`aclose` fails what is queued with :class:`~signaling.broker.BrokerClosed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from signaling.broker import BrokerClosed

if TYPE_CHECKING:
    from redis.asyncio import Redis

Command = tuple[Any, ...] | Callable[[], tuple[Any, ...]]
"""A Redis command and its arguments, e.g. ``("PUBLISH", channel, payload)``, or a function that makes it
when its batch is sent (for a caller that adds to it until then)."""


PIPELINE_TIMEOUT = 2.0
"""Seconds a pipeline may take: far above what Redis takes for hundreds of commands, far below redis-py's
own socket timeout times its retries."""


class Batcher:
    def __init__(self, redis: Redis, timeout: float = PIPELINE_TIMEOUT) -> None:
        self.redis = redis
        self.timeout = timeout
        self._queued: list[tuple[tuple[Command, ...], asyncio.Future[list[Any]]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # pipelines sent (for tests and metrics)
        self.commands = 0  # commands sent in them

    async def execute(self, *commands: Command) -> list[Any]:
        """Send ``commands`` (in this order, with whatever else is queued) and return their replies."""
        return await self.submit(*commands)

    def submit(self, *commands: Command) -> asyncio.Future[list[Any]]:
        """Queue ``commands`` now, without waiting: the future holds their replies (or the error). Cancel it
        to take them back while they wait for their batch."""
        if self._closed:
            raise BrokerClosed()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued.append((commands, future))
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="redis-batcher")
        return future

    async def _send(self) -> None:
        try:
            while self._queued:
                # One turn of the loop first: what the tasks ready now send goes in the same batch.
                await asyncio.sleep(0)
                batch, self._queued = self._queued, []
                batch = [(commands, future) for commands, future in batch if not future.done()]
                if batch:
                    await self._send_one(batch)
        finally:
            self._task = None

    async def _send_one(self, batch: list[tuple[tuple[Command, ...], asyncio.Future[list[Any]]]]) -> None:
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for commands, _ in batch:
                    for command in commands:
                        pipe.execute_command(*(command() if callable(command) else command))
                try:
                    async with asyncio.timeout(self.timeout):
                        replies = await pipe.execute(raise_on_error=False)
                except TimeoutError as exc:  # ours: callers handle redis-py's errors, as for a lone command
                    raise RedisTimeoutError(f"no reply to a pipeline within {self.timeout} s") from exc
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (aclose): nobody waits in vain
            for _, future in batch:
                if not future.done():
                    future.set_exception(BrokerClosed())
            raise
        self.batches += 1
        start = 0
        for commands, future in batch:
            mine, start = replies[start : start + len(commands)], start + len(commands)
            self.commands += len(commands)
            if future.done():
                continue
            error = next((reply for reply in mine if isinstance(reply, Exception)), None)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(mine)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        queued, self._queued = self._queued, []
        for _, future in queued:
            if not future.done():
                future.set_exception(BrokerClosed())
