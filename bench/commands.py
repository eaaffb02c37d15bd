"""Commands to a room's home across nodes: the reliable queue (Redis Streams) against pub/sub, side by side.

Run from the repository root: ``.venv/bin/python -m bench.commands``. It starts its own redis-server on a free
loopback port; two :class:`~signaling.redis_broker.RedisBroker` instances on their own clients stand for two
nodes (the "edge" node holding a guest's socket pushes, the room's "home" node reads). Prints ``name: value``
lines:

- ``queue_latency_p50/p99_ms`` and ``pubsub_latency_p50/p99_ms``: push (publish) → read at the home, at a
  steady ``--rate`` messages/s spread over ``--rooms`` rooms for ``--seconds``; each message is a room
  command of the size of a memo keystroke.
- ``queue_per_s`` and ``pubsub_per_s``: messages/s delivered with ``--workers`` pushers going flat out.
- ``queue_cpu_us_per_message`` and ``pubsub_cpu_us_per_message``: this process's CPU time (both nodes: the
  pushing and the reading side) per delivered message in that phase; it moves less with a busy machine.
- ``queue_latency_ratio`` (queue p99 ÷ pub/sub p99), ``queue_throughput_ratio`` and ``queue_cpu_ratio``,
  from the same run.

Targets, against pub/sub measured in the same run (absolute figures swing with the machine's load): the
queue's p99 latency at most twice pub/sub's (``queue_latency_ratio`` ≤ 2), and its CPU per message at most
twice pub/sub's (``queue_cpu_ratio`` ≤ 2). Losing nothing may cost more work per command, not an order of
magnitude.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from signaling.broker import Subscription
from signaling.redis_broker import RedisBroker
from tests.harness.redis import RedisServer

COMMAND = {"event": "message", "role": "guest", "connection": "c" * 32, "node": "n" * 32}


def percentile_ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else 0.0


class Arrivals:
    """What the home reads from every room, with each message's age; ``until(n)`` waits for n in all."""

    def __init__(self, subscriptions: list[Subscription]) -> None:
        self.latencies: list[float] = []
        self._target = 0
        self._reached = asyncio.Event()
        self._readers = [asyncio.create_task(self._read(s)) for s in subscriptions]

    async def _read(self, subscription: Subscription) -> None:
        async for message in subscription:
            self.latencies.append(time.perf_counter() - message["sent"])
            if self._target and len(self.latencies) >= self._target:
                self._reached.set()

    async def until(self, count: int, seconds: float) -> list[float]:
        self._target = count
        if len(self.latencies) < count:
            await asyncio.wait_for(self._reached.wait(), seconds)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return self.latencies


Send = Callable[[str, int], Awaitable[None]]


async def steady(send: Send, rooms: int, rate: float, seconds: float, workers: int) -> int:
    """Send ``rate`` messages/s for ``seconds`` (every 10 ms, what is due, at most ``workers`` at a time, as a
    node's sockets would); returns how many were sent. A late tick sends its backlog, so stalls show."""
    start, sent = time.perf_counter(), 0
    slots = asyncio.Semaphore(workers)

    async def one(n: int) -> None:
        async with slots:
            await send(f"room-{n % rooms}", n)

    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate) + 1
        await asyncio.gather(*(one(n) for n in range(sent, due)))
        sent = due
        await asyncio.sleep(0.01)
    return sent


async def flat_out(send: Send, rooms: int, workers: int, count: int) -> None:
    per_worker = count // workers

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await send(f"room-{(w * per_worker + i) % rooms}", i)

    await asyncio.gather(*(worker(w) for w in range(workers)))


async def measure(args: argparse.Namespace, url: str) -> bool:
    clients = [Redis.from_url(url) for _ in range(2)]  # as web/app.py makes the node's client
    edge, home = RedisBroker(clients[0], prefix="bench"), RedisBroker(clients[1], prefix="bench")
    topics = [f"room-{n}" for n in range(args.rooms)]
    queues = [await home.consume(f"{topic}:in") for topic in topics]
    subs = [await home.subscribe(f"{topic}:in") for topic in topics]

    async def push(topic: str, n: int) -> None:
        await edge.push(f"{topic}:in", {**COMMAND, "sent": time.perf_counter()}, key=uuid.uuid4().hex)

    async def publish(topic: str, n: int) -> None:
        await edge.publish(f"{topic}:in", {**COMMAND, "sent": time.perf_counter()})

    results: dict[str, tuple[list[float], float, float]] = {}
    try:
        for name, send, readers in (("pubsub", publish, subs), ("queue", push, queues)):
            arrivals = Arrivals(readers)
            sent = await steady(send, args.rooms, args.rate, args.seconds, args.workers)
            latencies = await arrivals.until(sent, 30)
            count = args.workers * 200
            arrivals = Arrivals(readers)
            start, cpu = time.perf_counter(), time.process_time()
            await flat_out(send, args.rooms, args.workers, count)
            await arrivals.until(count, 60)  # delivered, not only sent
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            results[name] = (latencies, count / seconds, cpu / count * 1e6)
    finally:
        await edge.aclose()
        await home.aclose()
        for client in clients:
            await client.aclose()

    for name, (latencies, per_second, cpu_us) in results.items():
        print(f"{name}_latency_p50_ms: {percentile_ms(latencies, 50):.2f}")
        print(f"{name}_latency_p99_ms: {percentile_ms(latencies, 99):.2f}")
        print(f"{name}_per_s: {per_second:.0f}")
        print(f"{name}_cpu_us_per_message: {cpu_us:.0f}")
    queue_p99, pubsub_p99 = (percentile_ms(results[n][0], 99) for n in ("queue", "pubsub"))
    latency_ratio = queue_p99 / pubsub_p99 if pubsub_p99 else float("nan")
    throughput_ratio = results["queue"][1] / results["pubsub"][1]
    cpu_ratio = results["queue"][2] / results["pubsub"][2]
    print(f"queue_latency_ratio: {latency_ratio:.2f}")
    print(f"queue_throughput_ratio: {throughput_ratio:.2f}")
    print(f"queue_cpu_ratio: {cpu_ratio:.2f}")
    met = latency_ratio <= 2 and cpu_ratio <= 2
    print(f"targets_met: {'yes' if met else 'no'}")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="commands per second (steady phase)")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        print(f"# {args.rate:g} commands/s, {args.rooms} rooms, {args.seconds:g} s; {server.url}")
        asyncio.run(measure(args, server.url))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
