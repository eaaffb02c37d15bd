"""The event loop's share of the media relay's per-packet cost: CPU per UDP datagram received and sent through
a datagram transport on asyncio's selector loop and on uvloop, the way ``media.hooks`` reads them.

- ``asyncio``: asyncio reads one datagram per readiness event; ``media.hooks`` reads on from the transport's
  socket until it would block (up to 32), as measured here.
- ``uvloop``: libuv reads up to 32 datagrams per readiness event itself; nothing more is needed.
- ``uvloop_dup``: uvloop plus a drain from a dup of its descriptor (a way to keep asyncio's code on uvloop,
  whose transport has no socket to read): both read the same socket, so each readiness event ends in two
  reads that would block instead of one, and the dup keeps the port open after the transport closes.

A sender in another process sends ``--rate`` datagrams/s of 1,100 bytes (bursts of 4, a video frame's
packets); the receiving process's CPU time is divided by the datagrams it got. Sending is timed apart:
``transport.sendto`` in a loop. Run inside ``unshare --net`` like the other benches. The ratio line compares
asyncio with uvloop, each round measured side by side; ``targets_met`` when uvloop receives cheaper than
asyncio (the reason ``web.serving`` runs uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import time
from typing import Any

from web import serving

SIZE = 1100
BURST = 4
VARIANTS = ("asyncio", "uvloop", "uvloop_dup")


def send_at_rate(port: int, rate: int, seconds: float) -> None:
    """The other process: ``rate`` datagrams/s to ``port`` for ``seconds``."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = os.urandom(SIZE)
    start, sent = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for _ in range(BURST):
            sender.sendto(payload, ("127.0.0.1", port))
        sent += BURST


class Counting(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1


def drain_after(protocol: Counting, sock: socket.socket) -> None:
    """After each datagram the loop delivers, read on from ``sock`` until it would block (as media.hooks)."""
    one = protocol.datagram_received

    def datagram_received(data: bytes, addr: Any) -> None:
        one(data, addr)
        for _ in range(32):
            try:
                data, addr = sock.recvfrom(65536)
            except OSError:
                return
            one(data, addr)

    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010


async def receive(variant: str, rate: int, seconds: float) -> float:
    """µs of this process's CPU per datagram received."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Counting, local_addr=("127.0.0.1", 0))
    dup: socket.socket | None = None
    if variant == "asyncio":
        drain_after(protocol, transport.get_extra_info("socket")._sock)  # the real socket behind asyncio's
    elif variant == "uvloop_dup":
        dup = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        dup.setblocking(False)
        drain_after(protocol, dup)
    port = transport.get_extra_info("sockname")[1]
    sender = multiprocessing.get_context("spawn").Process(
        target=send_at_rate, args=(port, rate, seconds + 1.0)
    )
    sender.start()
    await asyncio.sleep(0.5)
    count0, cpu0 = protocol.count, time.process_time()
    await asyncio.sleep(seconds)
    count, cpu = protocol.count - count0, time.process_time() - cpu0
    sender.join()
    transport.close()
    if dup is not None:
        dup.close()
    return 1e6 * cpu / max(1, count)


async def send(count: int) -> float:
    """µs of CPU per ``transport.sendto`` of a datagram (to a socket nobody reads: the kernel drops them)."""
    loop = asyncio.get_running_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    payload, address = os.urandom(SIZE), sink.getsockname()
    cpu0 = time.process_time()
    for index in range(count):
        transport.sendto(payload, address)
        if index % 64 == 0:
            await asyncio.sleep(0)
    cpu = time.process_time() - cpu0
    transport.close()
    sink.close()
    return 1e6 * cpu / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=12_000, help="datagrams/s (100 streams ≈ 12,000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    received: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    sent: dict[str, list[float]] = {variant: [] for variant in VARIANTS[:2]}
    for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits every variant
        for variant in VARIANTS:
            loop: serving.Loop = "asyncio" if variant == "asyncio" else "uvloop"
            with asyncio.Runner(loop_factory=serving.loop_factory(loop)) as runner:
                received[variant].append(runner.run(receive(variant, args.rate, args.seconds)))
                if variant in sent:
                    sent[variant].append(runner.run(send(40_000)))
    for variant in VARIANTS:
        print(f"{variant}_recv_us_per_datagram: {statistics.median(received[variant]):.2f}")
    for variant in sent:
        print(f"{variant}_send_us_per_datagram: {statistics.median(sent[variant]):.2f}")
    ratio = statistics.median(a / u for a, u in zip(received["asyncio"], received["uvloop"], strict=True))
    dup_ratio = statistics.median(
        d / u for d, u in zip(received["uvloop_dup"], received["uvloop"], strict=True)
    )
    print(f"uvloop_recv_ratio: {ratio:.2f}")  # asyncio's cost ÷ uvloop's, per round
    print(f"uvloop_dup_recv_ratio: {dup_ratio:.2f}")  # the dup'd drain's cost ÷ plain uvloop's
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"targets_met: {'yes' if ratio > 1 else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
