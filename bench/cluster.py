"""Capacity across nodes: memo keystrokes a second with one node and with two, and what crossing nodes costs.

Starts its own redis-server and PostgreSQL, and two ``tsunagu serve`` processes (node-a, node-b: two ports,
one database, one Redis), as two boxes would run them. Rooms are made in the database (the first through
HTTP, for real cookies) and homed on a node of our choosing; clients in a child process join each room as
host and guest and type as fast as the server lets them (each side keeps ``WINDOW`` keystrokes in flight:
sent, not yet received by the other side). Every keystroke is a real Yjs update, made beforehand with pycrdt.

Phases, ``--seconds`` each:
- ``1node``: every room homed on node A, both sides on node A;
- ``2nodes``: half the rooms on each node, both sides of a room on its home;
- ``cross``: as ``2nodes``, but each guest on the other node (its frames cross through Redis).

Lines: ``keystrokes_per_s_1node``, ``keystrokes_per_s_2nodes``, ``scaling_ratio`` (2 nodes ÷ 1; target
≥ 1.2 on this box, whose two cores the clients share) and ``cross_node_cpu_ratio`` (the nodes' CPU time
per keystroke, cross ÷ 2nodes; target ≤ 1.25).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.memo import as_browsers_send
from signaling.memo import STEP1, UPDATE, decode, encode, sync_message
from signaling.models import JoinedVia, RoomRow
from signaling.protocol import SUBPROTOCOL
from signaling.rooms import create_room
from store.db import create_engine, session_factory
from store.migrate import upgrade
from tests.harness.ports import free_port, wait_for_port
from tests.harness.postgres import PostgresCluster
from tests.harness.redis import RedisServer
from tests.helpers import PASSWORD
from tests.joining import Browser

WINDOW = 4  # keystrokes in flight per side
CLIENT_PROCESSES = 2
KEYSTROKES = 1500  # made beforehand per side; a side that used them all stops (bounded)
EMAIL = "host@bench.example"


def keystrokes(count: int) -> list[str]:
    """``count`` memo.sync frames, each one character typed after the previous (one side's typing)."""
    doc: Doc[Any] = Doc()
    doc["memo"] = text = Text()
    frames = []
    for i in range(count):
        before = doc.get_state()
        # At the end: pycrdt counts a Text's length and positions in UTF-8 bytes (``len(text)``), not in
        # characters; inserting at ``len(str(text))`` put every keystroke after the first あ inside a
        # character, and the server refused nearly all of them as out of step.
        text.insert(len(text), "あいうえおabc"[i % 8])
        data = encode(sync_message(UPDATE, doc.get_update(before)))
        frames.append(as_browsers_send({"type": "memo.sync", "data": data}))
    return frames


# The clients (child process)


class Side:
    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.sent = 0
        self.arrived = 0  # of this side's keystrokes, at the other side
        self.refused = 0  # of this side's keystrokes, refused by the server (an error frame)
        self.room = asyncio.Event()


async def _join(url: str, cookie: str, base: str) -> ClientConnection:
    ws = await connect(
        url,
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={"Cookie": cookie},
        origin=base,  # type: ignore[arg-type]
        open_timeout=60,
        max_size=2**20,
        compression=None,
    )
    for _ in range(20):  # up to the welcome
        if json.loads(await ws.recv())["type"] == "welcome":
            break
    await ws.send(as_browsers_send({"type": "memo.sync", "data": encode(sync_message(STEP1, b"\x00"))}))
    return ws


async def _type(ws: ClientConnection, me: Side, until: float) -> None:
    with contextlib.suppress(ConnectionClosed):  # a socket the server closed (4503) stops typing
        await _type_on(ws, me, until)


async def _type_on(ws: ClientConnection, me: Side, until: float) -> None:
    while me.sent < len(me.frames) and time.monotonic() < until:
        if me.sent - me.arrived >= WINDOW:
            me.room.clear()
            try:
                await asyncio.wait_for(me.room.wait(), max(0.01, until - time.monotonic()))
            except TimeoutError:
                return
            continue
        await ws.send(me.frames[me.sent])
        me.sent += 1


async def _hear(ws: ClientConnection, me: Side, other: Side) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            if not isinstance(message, str):
                continue
            if message.startswith('{"type":"memo.sync"'):
                # The other side's keystrokes come as updates (ours are not echoed); the server's own sync
                # steps (its answer to an out-of-step update) are not keystrokes.
                if decode(json.loads(message)["data"])[0] == UPDATE:
                    other.arrived += 1
                    other.room.set()
            elif message.startswith('{"type":"error"'):
                me.refused += 1
    other.room.set()  # the other side stops waiting for this one


async def _clients(job: dict[str, Any]) -> tuple[int, int, float, float]:
    """Join every room, type for ``seconds``; (keystrokes arrived, refused, wall start, wall end)."""
    host_frames, guest_frames = job["host_frames"], job["guest_frames"]
    semaphore = asyncio.Semaphore(40)

    async def pair(room: dict[str, str]) -> tuple[ClientConnection, ClientConnection]:
        async with semaphore:
            host = await _join(room["host_url"], job["cookies"]["host"], room["host_origin"])
            guest = await _join(room["guest_url"], job["cookies"]["guest"], room["guest_origin"])
            return host, guest

    sockets = await asyncio.gather(*(pair(room) for room in job["rooms"]))
    sides = [(Side(host_frames), Side(guest_frames)) for _ in sockets]
    readers = [
        asyncio.create_task(_hear(ws, me, other))
        for (host_ws, guest_ws), (host, guest) in zip(sockets, sides, strict=True)
        for ws, me, other in ((host_ws, host, guest), (guest_ws, guest, host))
    ]
    await asyncio.sleep(1.0)  # the step-1 answers are in
    for h, g in sides:
        h.arrived = g.arrived = h.refused = g.refused = 0
    started, wall = time.monotonic(), time.time()
    until = started + job["seconds"]
    await asyncio.gather(
        *(
            _type(ws, me, until)
            for (host_ws, guest_ws), (host, guest) in zip(sockets, sides, strict=True)
            for ws, me in ((host_ws, host), (guest_ws, guest))
        )
    )
    arrived = sum(h.arrived + g.arrived for h, g in sides)
    refused = sum(h.refused + g.refused for h, g in sides)
    end = time.time()
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for pair_ in sockets for ws in pair_), return_exceptions=True)
    return arrived, refused, wall, end


def _client_process(job: dict[str, Any], out: Any) -> None:
    out.send(asyncio.run(_clients(job)))


def _in_children(job: dict[str, Any], processes: int, timeout: float) -> tuple[int, int, float, float]:
    """The clients in ``processes`` child processes (rooms split between them), so that they, not the
    nodes, are less often what limits the rate; (keystrokes arrived, refused, first start, last end)."""
    context = multiprocessing.get_context("spawn")
    children = []
    for i in range(processes):
        receiving, sending = context.Pipe(duplex=False)
        process = context.Process(
            target=_client_process, args=({**job, "rooms": job["rooms"][i::processes]}, sending)
        )
        process.start()
        children.append((process, receiving))
    results = []
    try:
        deadline = time.monotonic() + timeout
        for _process, receiving in children:
            if not receiving.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"clients did not finish in {timeout} s")
            results.append(receiving.recv())
    finally:
        for process, _ in children:
            process.join(10)
            if process.is_alive():
                process.kill()
    return (
        sum(int(r[0]) for r in results),
        sum(int(r[1]) for r in results),
        min(r[2] for r in results),
        max(r[3] for r in results),
    )


# The nodes


def cpu_seconds(pid: int) -> float:
    """A process's CPU time (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """The nodes' CPU time, sampled every 0.1 s, to tell how much of it the typing took (not the joining)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.time(), sum(cpu_seconds(pid) for pid in self.pids)))

    def between(self, start: float, end: float) -> float:
        self._stop.set()
        self._thread.join()
        inside = [cpu for wall, cpu in self.samples if start <= wall <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else float("nan")


class Node:
    def __init__(self, node_id: str, env: dict[str, str], root: Path) -> None:
        self.node_id = node_id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (root / f"{node_id}.log").open("wb")
        command = [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, env={**env, "NODE_ID": node_id}, stdout=self.log, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


def _seed(env: dict[str, str]) -> None:
    cli = [sys.executable, "-m", "web.cli"]
    user = ["user", "add", "--org", "bench", "--role", "host", "--email", EMAIL, "--password", PASSWORD]
    for args in (["org", "add", "bench", "--name", "Bench"], user):
        subprocess.run([*cli, *args], env=env, check=True, capture_output=True, timeout=60)


def _cookie(browser: Browser) -> str:
    return "; ".join(f"{name}={value}" for name, value in browser.http.cookies.items())


async def _first_room(node: Node) -> tuple[str, dict[str, str]]:
    host, guest = Browser(node.url), Browser(node.url)
    try:
        await host.sign_in(EMAIL, PASSWORD)
        await guest.open("/")
        number = (await guest.post_json("/api/numbers")).json()["number"]
        started = await host.post_json("/api/rooms", {"number": number})
        assert started.status_code == 201, started.text
        return started.json()["room_id"], {"host": _cookie(host), "guest": _cookie(guest)}
    finally:
        await host.aclose()
        await guest.aclose()


async def _rooms(database_url: str, first: str, homes: list[str]) -> list[str]:
    """One new room per entry of ``homes``, homed there, for the first room's host and guest."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as db:
            room = await db.get(RoomRow, first)
            assert room is not None
            ids = []
            for home in homes:
                made, _ = await create_room(
                    db,
                    org_id=room.org_id,
                    host_id=room.host_id,
                    via=JoinedVia.NUMBER,
                    guest_token="unused",
                    camera=False,
                    recording=False,
                    home_node=home,
                    now=time.time(),
                )
                ids.append(made.id)
            await db.execute(
                update(RoomRow).where(RoomRow.id.in_(ids)).values(guest_token_hash=room.guest_token_hash)
            )
            return ids
    finally:
        await engine.dispose()


async def cluster_bench(rooms: int, seconds: float) -> dict[str, float]:
    redis, postgres = RedisServer(), PostgresCluster()
    redis.start()
    postgres.start()
    nodes: list[Node] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tsunagu-cluster-") as tmp:
            root = Path(tmp)
            database_url = await postgres.create_database()
            await asyncio.to_thread(upgrade, database_url)
            env = {
                **{k: v for k, v in os.environ.items() if k not in ("WORKERS", "NODE_ID")},
                "DATA_DIR": str(root / "var"),
                "DATABASE_URL": database_url,
                "REDIS_URL": redis.url,
                "SECRET_KEY": secrets.token_hex(32),
                "LOG_LEVEL": "warning",
                "LOG_FORMAT": "json",
                # Clients type far faster than a person: the per-connection limits are not measured here.
                "ROOM_MESSAGES_PER_SECOND": "100000",
                "ROOM_MESSAGE_BURST": "100000",
            }
            await asyncio.to_thread(_seed, env)
            nodes = [Node("node-a", env, root), Node("node-b", env, root)]
            for node in nodes:
                await asyncio.to_thread(wait_for_port, node.port, 90.0)
            node_a, node_b = nodes
            first, cookies = await _first_room(node_a)
            frames = await asyncio.to_thread(lambda: (keystrokes(KEYSTROKES), keystrokes(KEYSTROKES)))

            refused = 0

            async def phase(homes: list[Node], cross: bool) -> tuple[float, float]:
                """(keystrokes a second, the nodes' CPU µs per keystroke)."""
                nonlocal refused
                ids = await _rooms(database_url, first, [n.node_id for n in homes])
                plan = []
                for room_id, home in zip(ids, homes, strict=True):
                    other = node_b if home is node_a else node_a
                    guest_node = other if cross else home
                    plan.append(
                        {
                            "host_url": f"{home.url.replace('http', 'ws')}/ws/rooms/{room_id}",
                            "host_origin": home.url,
                            "guest_url": f"{guest_node.url.replace('http', 'ws')}/ws/rooms/{room_id}",
                            "guest_origin": guest_node.url,
                        }
                    )
                job = {
                    "rooms": plan,
                    "cookies": cookies,
                    "host_frames": frames[0],
                    "guest_frames": frames[1],
                    "seconds": seconds,
                }
                sampler = CpuSampler([n.process.pid for n in nodes])
                arrived, refusals, start, end = await asyncio.to_thread(
                    _in_children, job, CLIENT_PROCESSES, seconds + 120
                )
                refused += refusals
                return arrived / seconds, sampler.between(start, end) / max(1, arrived) * 1e6

            one, one_cpu = await phase([node_a] * rooms, cross=False)
            two, two_cpu = await phase([node_a, node_b] * (rooms // 2), cross=False)
            cross, cross_cpu = await phase([node_a, node_b] * (rooms // 2), cross=True)
    finally:
        for node in nodes:
            node.stop()
        postgres.stop()
        redis.stop()
    return {
        "rooms": rooms,
        "keystrokes_per_s_1node": one,
        "keystrokes_per_s_2nodes": two,
        "keystrokes_per_s_cross": cross,
        "node_cpu_us_per_keystroke_1node": one_cpu,
        "node_cpu_us_per_keystroke_2nodes": two_cpu,
        "node_cpu_us_per_keystroke_cross": cross_cpu,
        "refused_keystrokes": refused,  # error frames while typing: the figures count only taken keystrokes
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rooms", type=int, default=100, help="rooms per phase (an even number)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each phase types")
    args = parser.parse_args(argv)
    figures = asyncio.run(cluster_bench(args.rooms, args.seconds))
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    scaling = figures["keystrokes_per_s_2nodes"] / figures["keystrokes_per_s_1node"]
    cross = figures["node_cpu_us_per_keystroke_cross"] / figures["node_cpu_us_per_keystroke_2nodes"]
    # A refused keystroke is a bench fault (its updates are not what a browser sends), not a figure.
    met = scaling >= 1.2 and cross <= 1.25 and figures["refused_keystrokes"] == 0
    print(f"targets_met: {'yes' if met else 'no'}")
    print(f"scaling_ratio: {scaling:.2f}")
    print(f"cross_node_cpu_ratio: {cross:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
