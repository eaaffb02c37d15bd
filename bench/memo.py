"""共有メモ latency: a keystroke on one side until the other side has the Yjs update, with many rooms.

500 rooms × 2 participants on one node (the app on uvicorn in this process, as ``tsunagu serve`` would run
it); every participant types 5 characters a second for a bounded time, each keystroke a real Yjs update made
with pycrdt and sent as ``memo.sync``; the time until the peer's socket receives the forwarded update is
taken (p50/p99). The baseline, in the same run, is the same number of sockets sending the same frames at the
same rate to a bare Starlette echo endpoint (one round trip, no validation, broker, state machine, Yjs or
storage). After the memo, the same sockets in pairs on a bare relay (``bench/servers.py``: a reader and a
writer task per socket and a queue between them, as a room's socket has, and nothing else) show what handing
a frame from one socket to another costs by itself: ``relay_cpu_ratio`` is that floor against the echo, and
``memo_over_relay_cpu_us`` what the memo's own work (edge checks, state machine, Yjs checks, the durable log)
adds to it. The clients run in a child process, so they do not compete with the server for this process's GIL.
``memo_taken_directly_pct`` is the share of keystrokes the server took on its direct path
(``web/direct_socket.py``: read and forwarded in the socket's read callback).

Rooms are created directly in the database (500 rooms through the HTTP flow would need 500 connect numbers,
which are rate-limited per client address); the first room is made through HTTP so that the host's session
and the guest's token are real, and the others reuse that guest's token hash. The server opens each room
when its first participant connects, as after a restart.

Targets (issue 17): at ``--rate 1`` ``memo_latency_p99_ms`` < 50; at ``--rate 2`` ``memo_cpu_ratio``
(server CPU per keystroke ÷ per echo message) ≤ 1.5 and ``memo_to_echo_p99_ratio`` ≤ 2. ``--deflate``:
clients offer permessage-deflate, as browsers do (the server declines it, as ``tsunagu serve`` does);
``--server-deflate``: the servers accept it (uvicorn's default), to measure what it costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import threading
import time
from typing import Any

from pycrdt import Doc, Text
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect

from bench.servers import app_and_echo
from signaling.memo import STEP1, UPDATE, decode, encode, parse_sync_message, sync_message
from signaling.models import JoinedVia, RoomRow
from signaling.protocol import SUBPROTOCOL
from signaling.rooms import create_room
from store.models import Role
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import Browser
from web import direct_socket
from web.services import services


def as_browsers_send(message: dict[str, Any]) -> str:
    """A frame as the browsers' ``JSON.stringify`` writes it: no spaces (Python's default puts one after each
    ``,`` and ``:``, which the server's keystroke lane does not expect and reads in full instead)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def percentile_ms(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


# The clients (child process)


class Typist:
    """One participant: a pycrdt doc, typing at ``rate`` per second, timing the peer's updates."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.doc["memo"] = self.text = Text()
        self.sent: list[float] = []
        self.peer: Typist | None = None
        self.received = 0
        self.samples: list[float] = []

    def keystroke(self) -> str:
        before = self.doc.get_state()
        self.text.insert(len(str(self.text).encode()), random.choice("あいうえおabc"))
        self.sent.append(time.perf_counter())
        return as_browsers_send(
            {"type": "memo.sync", "data": encode(sync_message(UPDATE, self.doc.get_update(before)))}
        )

    def receive(self, frame: dict[str, Any], now: float) -> None:
        if frame.get("type") != "memo.sync":
            return
        kind, payload = parse_sync_message(decode(frame["data"]))
        if kind == STEP1:
            return
        self.doc.apply_update(payload)
        if kind == UPDATE and self.peer is not None:
            if self.received < len(self.peer.sent):
                self.samples.append(now - self.peer.sent[self.received])
            self.received += 1


async def _read(ws: ClientConnection, typist: Typist) -> None:
    async for message in ws:
        typist.receive(json.loads(message), time.perf_counter())


async def _type(ws: ClientConnection, typist: Typist, rate: float, seconds: float) -> None:
    await asyncio.sleep(random.random() / rate)
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        await ws.send(typist.keystroke())


Window = tuple[float, float]  # wall-clock start and end of the typing, for the server's CPU time


async def _memo_clients(
    base: str, rooms: list[str], cookies: dict[str, str], rate: float, seconds: float, deflate: bool
) -> tuple[list[float], Window]:
    async def join(room_id: str, role: str, typist: Typist) -> ClientConnection:
        ws = await connect(
            f"{base}/ws/rooms/{room_id}",
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers={"Cookie": cookies[role]},
            origin=base.replace("ws", "http", 1),  # type: ignore[arg-type]
            open_timeout=60,
            max_size=2**20,
            compression="deflate" if deflate else None,  # browsers offer permessage-deflate (see --deflate)
        )
        for _ in range(20):  # up to the welcome
            if json.loads(await ws.recv())["type"] == "welcome":
                break
        step1 = encode(sync_message(STEP1, typist.doc.get_state()))
        await ws.send(as_browsers_send({"type": "memo.sync", "data": step1}))
        return ws

    pairs = []
    semaphore = asyncio.Semaphore(50)

    async def pair(room_id: str) -> tuple[Typist, Typist, ClientConnection, ClientConnection]:
        async with semaphore:
            host, guest = Typist(), Typist()
            host.peer, guest.peer = guest, host
            return host, guest, await join(room_id, "host", host), await join(room_id, "guest", guest)

    pairs = await asyncio.gather(*(pair(room_id) for room_id in rooms))
    readers = [asyncio.create_task(_read(ws, t)) for h, g, hw, gw in pairs for t, ws in ((h, hw), (g, gw))]
    await asyncio.sleep(0.5)
    started = time.time()
    await asyncio.gather(
        *(_type(ws, t, rate, seconds) for h, g, hw, gw in pairs for t, ws in ((h, hw), (g, gw)))
    )
    await asyncio.sleep(1.0)  # the last updates arrive
    window = (started, time.time())
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for _h, _g, hw, gw in pairs for ws in (hw, gw)), return_exceptions=True)
    return [s for h, g, _hw, _gw in pairs for s in h.samples + g.samples], window


_BASELINE_FRAME = as_browsers_send({"type": "memo.sync", "data": encode(b"\x02" + bytes(40))})


async def _send_and_time(
    ws: ClientConnection,
    rate: float,
    seconds: float,
    sent: list[float],
    theirs: list[float],
    samples: list[float],
) -> None:
    """Send the baseline frame at ``rate`` on ``ws``, noting each send in ``sent``, and time each frame it
    gets against the send noted in ``theirs`` (frames arrive in order: the n-th received is the n-th sent)."""
    received = 0

    async def read() -> None:
        nonlocal received
        async for _ in ws:
            samples.append(time.perf_counter() - theirs[received])
            received += 1

    reader = asyncio.create_task(read())
    await asyncio.sleep(random.random() / rate)
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        sent.append(time.perf_counter())
        await ws.send(_BASELINE_FRAME)
    await asyncio.sleep(1.0)
    reader.cancel()


async def _echo_clients(
    url: str, sockets: int, rate: float, seconds: float, deflate: bool
) -> tuple[list[float], Window]:
    samples: list[float] = []
    semaphore = asyncio.Semaphore(50)

    async def open_one() -> ClientConnection:
        async with semaphore:
            return await connect(url, open_timeout=60, compression="deflate" if deflate else None)

    async def one(ws: ClientConnection) -> None:
        sent: list[float] = []  # the echo comes back to the sender
        await _send_and_time(ws, rate, seconds, sent, sent, samples)

    opened = await asyncio.gather(*(open_one() for _ in range(sockets)))
    started = time.time()
    await asyncio.gather(*(one(ws) for ws in opened))
    window = (started, time.time())
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return samples, window


async def _relay_clients(
    url: str, pairs: int, rate: float, seconds: float, deflate: bool
) -> tuple[list[float], Window]:
    """Pairs of sockets on the bare relay, each side sending at ``rate``; the time until the other side has
    each frame."""
    samples: list[float] = []
    semaphore = asyncio.Semaphore(50)

    async def open_pair(pair: int) -> tuple[ClientConnection, ClientConnection]:
        async with semaphore:
            compression = "deflate" if deflate else None
            first = await connect(f"{url}{pair}", open_timeout=60, compression=compression)
            return first, await connect(f"{url}{pair}", open_timeout=60, compression=compression)

    opened = await asyncio.gather(*(open_pair(pair) for pair in range(pairs)))
    await asyncio.sleep(0.5)
    started = time.time()
    timings: list[tuple[list[float], list[float]]] = [([], []) for _ in opened]  # each side's send times
    await asyncio.gather(
        *(
            _send_and_time(a, rate, seconds, sa, sb, samples)
            for (a, _), (sa, sb) in zip(opened, timings, strict=True)
        ),
        *(
            _send_and_time(b, rate, seconds, sb, sa, samples)
            for (_, b), (sa, sb) in zip(opened, timings, strict=True)
        ),
    )
    window = (started, time.time())
    await asyncio.gather(*(ws.close() for pair in opened for ws in pair), return_exceptions=True)
    return samples, window


def _client_process(job: dict[str, Any], out: Any) -> None:
    if job["kind"] == "echo":
        result = asyncio.run(
            _echo_clients(job["url"], job["sockets"], job["rate"], job["seconds"], job["deflate"])
        )
    elif job["kind"] == "relay":
        result = asyncio.run(
            _relay_clients(job["url"], job["pairs"], job["rate"], job["seconds"], job["deflate"])
        )
    else:
        result = asyncio.run(
            _memo_clients(
                job["url"], job["rooms"], job["cookies"], job["rate"], job["seconds"], job["deflate"]
            )
        )
    out.send(result)


def _in_child(job: dict[str, Any], timeout: float) -> tuple[list[float], Window]:
    receiving, sending = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(target=_client_process, args=(job, sending))
    process.start()
    try:
        if not receiving.poll(timeout):
            raise TimeoutError(f"{job['kind']} clients did not finish in {timeout} s")
        samples, window = receiving.recv()
        return list(samples), tuple(window)
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()


# The server side (this process)


class CpuSampler:
    """This process's CPU time, sampled every 0.1 s, to tell how much of it a time window took; with it, how
    many room messages the server took on its direct path (web/direct_socket.py)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.direct: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = time.time()
            self.samples.append((now, time.process_time()))
            self.direct.append((now, direct_socket.COUNTS.taken))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        inside = [cpu for wall, cpu in self.samples if start <= wall <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else float("nan")

    def taken_directly(self, start: float, end: float) -> int:
        inside = [taken for wall, taken in self.direct if start <= wall <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else 0


def _cookie(browser: Browser) -> str:
    return "; ".join(f"{name}={value}" for name, value in browser.http.cookies.items())


async def _make_rooms(server: LiveServer, count: int) -> tuple[list[str], dict[str, str]]:
    seeded = server.call(seed_org(server.app, "bench", {"host@bench.example": Role.HOST}))
    host, guest = Browser(server.url), Browser(server.url)
    await host.sign_in("host@bench.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    first = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    cookies = {"host": _cookie(host), "guest": _cookie(guest)}
    await host.aclose()
    await guest.aclose()

    async def insert() -> list[str]:
        async with services(server.app).sessions.begin() as db:
            room = await db.get(RoomRow, first)
            assert room is not None
            ids = []
            for _ in range(count - 1):
                made, _record = await create_room(
                    db,
                    org_id=seeded.org_id,
                    host_id=seeded.users["host@bench.example"],
                    via=JoinedVia.NUMBER,
                    guest_token="unused",
                    camera=False,
                    recording=False,
                    home_node=services(server.app).settings.node_id,
                    now=time.time(),
                )
                ids.append(made.id)
            await db.execute(
                update(RoomRow).where(RoomRow.id.in_(ids)).values(guest_token_hash=room.guest_token_hash)
            )
            return ids

    return [first, *server.call(insert(), timeout=120)], cookies


async def memo_bench(
    rooms: int, rate: float, seconds: float, deflate: bool = False, server_deflate: bool = False
) -> dict[str, float]:
    async with app_and_echo(per_message_deflate=server_deflate) as (app_server, echo_url):
        setup_started = time.perf_counter()
        room_ids, cookies = await _make_rooms(app_server, rooms)
        setup = time.perf_counter() - setup_started
        cpu = CpuSampler()
        echo, echo_window = await asyncio.to_thread(
            _in_child,
            {
                "kind": "echo",
                "url": echo_url,
                "sockets": 2 * rooms,
                "rate": rate,
                "seconds": seconds,
                "deflate": deflate,
            },
            seconds + 60,
        )
        memo, memo_window = await asyncio.to_thread(
            _in_child,
            {
                "kind": "memo",
                "url": app_server.url.replace("http", "ws"),
                "rooms": room_ids,
                "cookies": cookies,
                "rate": rate,
                "seconds": seconds,
                "deflate": deflate,
            },
            seconds + 90,
        )
        # After the memo, so that the memo's figures are taken as before this baseline was added.
        relay, relay_window = await asyncio.to_thread(
            _in_child,
            {
                "kind": "relay",
                "url": echo_url.removesuffix("/echo") + "/relay/",
                "pairs": rooms,
                "rate": rate,
                "seconds": seconds,
                "deflate": deflate,
            },
            seconds + 60,
        )
        cpu.stop()
    expected = 2 * rooms * int(rate * seconds)
    return {
        "rooms": rooms,
        "setup_s": setup,
        "memo_updates_measured": len(memo),
        "memo_updates_expected": expected,
        "memo_latency_p50_ms": percentile_ms(memo, 50),
        "echo_latency_p50_ms": percentile_ms(echo, 50),
        "echo_latency_p99_ms": percentile_ms(echo, 99),
        "memo_latency_p99_ms": percentile_ms(memo, 99),
        "relay_latency_p99_ms": percentile_ms(relay, 99),
        # The server's CPU time (this process: the event loop and SQLite's thread) while everybody types, per
        # message: what the latencies come from, and a figure the machine's noise moves less.
        "echo_server_cpu_us_per_message": cpu.between(*echo_window) / max(1, len(echo)) * 1e6,
        "relay_server_cpu_us_per_message": cpu.between(*relay_window) / max(1, len(relay)) * 1e6,
        "memo_server_cpu_us_per_keystroke": cpu.between(*memo_window) / max(1, len(memo)) * 1e6,
        # Keystrokes read and handled in the socket's read callback (the rest waited behind another frame).
        "memo_taken_directly_pct": 100.0 * cpu.taken_directly(*memo_window) / max(1, len(memo)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--rate", type=float, default=5.0, help="keystrokes per second per participant")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long everybody types")
    parser.add_argument(
        "--deflate", action="store_true", help="clients offer permessage-deflate (memo, relay and echo alike)"
    )
    parser.add_argument(
        "--server-deflate",
        action="store_true",
        help="the servers accept permessage-deflate (tsunagu serve declines it; see docs/deploy.md)",
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(memo_bench(args.rooms, args.rate, args.seconds, args.deflate, args.server_deflate))
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    p99_ratio = figures["memo_latency_p99_ms"] / figures["echo_latency_p99_ms"]
    # Server CPU per keystroke against per echo message, same sockets and settings, same run.
    cpu_ratio = figures["memo_server_cpu_us_per_keystroke"] / figures["echo_server_cpu_us_per_message"]
    # Targets (issue 17): at --rate 1 the p99 itself; at --rate 2 and above the ratios (the echo misses too).
    met = figures["memo_latency_p99_ms"] < 50 if args.rate <= 1 else cpu_ratio <= 1.5 and p99_ratio <= 2
    print(f"targets_met: {'yes' if met else 'no'}")
    print(f"memo_cpu_ratio: {cpu_ratio:.2f}")
    # The floor under it: a bare hand-off from one socket to the other, and what the memo adds on top.
    relay, memo = figures["relay_server_cpu_us_per_message"], figures["memo_server_cpu_us_per_keystroke"]
    print(f"relay_cpu_ratio: {relay / figures['echo_server_cpu_us_per_message']:.2f}")
    print(f"memo_over_relay_cpu_us: {memo - relay:.1f}")
    print(f"memo_to_echo_p99_ratio: {p99_ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
