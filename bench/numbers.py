"""Connect numbers: issue+redeem throughput and latency, in-process and on a real redis-server.

Run from the repository root: ``.venv/bin/python -m bench.numbers`` (or ``python bench/numbers.py``). It
starts its own redis-server on a free loopback port and prints ``name: value`` lines:

- ``redeems_per_s_*``: issue-then-redeem pairs per second with ``--workers`` (50) busy workers, each pair for
  a fresh guest token; ``issue_redeem_p50/p99_ms_*_loaded`` are the pair latencies during that run. At
  saturation those are queueing time (workers / throughput), so they are printed but not held to a target.
- ``issue_redeem_p50/p99_ms_*``: pair latency at a steady offered load (``--rate`` pairs/s, at most
  ``--workers`` in flight), counted from each pair's launch, including any wait for a free slot; a stalled
  loop launches late pairs in a burst, so stalls still show.
- baselines from the same run: Redis PING latency at the same offered load and PING throughput with the
  same workers, and the ratios against them, so figures from a noisy machine can still be compared.

Targets: p99 < 5 ms per pair, >= 2,000 redeems/s in-process and >= 1,000/s with Redis.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: import from the repository root, and do not shadow the stdlib `numbers`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from signaling.numbers import MemoryNumberStore, NumberStore, RedisNumberStore
from tests.harness.redis import RedisServer

Operation = Callable[[int], Awaitable[object]]


@dataclass
class Run:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def percentile_ms(self, q: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


def pair(store: NumberStore, label: str) -> Operation:
    async def issue_then_redeem(i: int) -> None:
        issued = await store.issue(f"{label}-{i}")
        await store.redeem(issued.number)

    return issue_then_redeem


async def saturate(operation: Operation, workers: int, seconds: float, limit: int) -> Run:
    """``workers`` tasks run ``operation`` back to back until ``seconds`` pass or ``limit`` are done."""
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    counter = iter(range(limit))

    async def worker() -> None:
        for i in counter:
            began = time.perf_counter()
            await operation(i)
            latencies.append(time.perf_counter() - began)
            if began >= deadline:
                return
            await asyncio.sleep(0)  # the in-process store never yields; let the other workers run

    await asyncio.gather(*(worker() for _ in range(workers)))
    return Run(len(latencies), time.perf_counter() - start, latencies)


async def paced(operation: Operation, rate: float, seconds: float, workers: int, offset: int) -> Run:
    """Start ``operation`` ``rate`` times a second (at most ``workers`` in flight); latency from launch."""
    latencies: list[float] = []
    slots = asyncio.Semaphore(workers)
    start = time.perf_counter()

    async def one(i: int, launched: float) -> None:
        async with slots:
            await operation(offset + i)
        latencies.append(time.perf_counter() - launched)

    tasks = []
    for i in range(max(1, int(rate * seconds))):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, time.perf_counter())))
    await asyncio.gather(*tasks)
    return Run(len(latencies), time.perf_counter() - start, latencies)


def report(name: str, value: float) -> None:
    text = str(value) if isinstance(value, int) else f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
    print(f"{name}: {text}", flush=True)


async def measure(args: argparse.Namespace, redis_url: str) -> bool:
    redis = Redis.from_url(redis_url, max_connections=args.workers + 10)
    try:
        await redis.flushdb()
        stores: dict[str, NumberStore] = {
            "memory": MemoryNumberStore(),
            "redis": RedisNumberStore(redis, prefix="bench:numbers"),
        }
        throughput: dict[str, float] = {}
        p99: dict[str, float] = {}
        for name, store in stores.items():
            loaded = await saturate(pair(store, f"{name}-load"), args.workers, args.seconds, args.limit)
            steady = await paced(
                pair(store, f"{name}-steady"), args.rate, args.latency_seconds, args.workers, 0
            )
            throughput[name], p99[name] = loaded.per_second, steady.percentile_ms(99)
            report(f"redeems_per_s_{name}", loaded.per_second)
            report(f"issue_redeem_p50_ms_{name}", steady.percentile_ms(50))
            report(f"issue_redeem_p99_ms_{name}", steady.percentile_ms(99))
            report(f"issue_redeem_p50_ms_{name}_loaded", loaded.percentile_ms(50))
            report(f"issue_redeem_p99_ms_{name}_loaded", loaded.percentile_ms(99))
            report(f"pairs_{name}", loaded.count + steady.count)

        async def ping(_: int) -> None:
            await redis.ping()

        pings = await saturate(ping, args.workers, min(args.seconds, 2.0), args.limit)
        steady_pings = await paced(ping, args.rate, args.latency_seconds, args.workers, 0)
        report("redis_pings_per_s", pings.per_second)
        report("redis_ping_p50_ms", steady_pings.percentile_ms(50))
        report("redis_ping_p99_ms", steady_pings.percentile_ms(99))
        report("redis_live_numbers_after", await stores["redis"].live_count())
    finally:
        await redis.aclose()

    met = max(p99.values()) < 5.0 and throughput["memory"] >= 2_000 and throughput["redis"] >= 1_000
    print("# targets: issue_redeem_p99_ms_* < 5, redeems_per_s_memory >= 2000, redeems_per_s_redis >= 1000")
    print(f"targets_met: {'yes' if met else 'no'}")
    report("redis_redeems_vs_pings_ratio", throughput["redis"] / pings.per_second)
    report("redis_pair_vs_ping_p99_ratio", p99["redis"] / steady_pings.percentile_ms(99))
    report("redis_vs_memory_ratio", throughput["redis"] / throughput["memory"])
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="saturation run per store (default 5)")
    parser.add_argument("--latency-seconds", type=float, default=3.0, help="steady run per store (default 3)")
    parser.add_argument("--rate", type=float, default=200.0, help="steady offered pairs/s (default 200)")
    parser.add_argument("--workers", type=int, default=50, help="concurrent workers (default 50)")
    parser.add_argument("--limit", type=int, default=500_000, help="most pairs per saturation run")
    args = parser.parse_args(argv)
    server = RedisServer()
    server.start()
    try:
        asyncio.run(measure(args, server.url))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
