"""Page-turn latency, host → guest through the room channel, next to a bare WebSocket echo in the same run.

Both run on uvicorn in this process (as ``tsunagu serve`` would), over loopback: the host turns pages of an
open document one at a time and the time until the guest's socket receives the new ``doc.state`` is taken;
the baseline is the round trip of a frame through a bare Starlette echo endpoint — the same two hops over
the network, with none of the room's work (validation, broker, state machine, page-view storage).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

from websockets.asyncio.client import connect

from bench.servers import app_and_echo
from documents.models import Document, DocumentKind, DocumentStatus
from signaling.protocol import SUBPROTOCOL
from store.models import Role
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import Browser, receive_type, until
from web.services import services


def percentile_ms(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


async def echo_latencies(url: str, count: int) -> list[float]:
    samples = []
    async with connect(url) as ws:
        for i in range(count):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "doc.page", "page": i}))
            await ws.recv()
            samples.append(time.perf_counter() - started)
    return samples


async def _add_document(server: LiveServer, org_id: int, owner_id: int) -> int:
    async def insert() -> int:
        async with services(server.app).sessions.begin() as db:
            document = Document(
                org_id=org_id,
                owner_id=owner_id,
                name="bench.pdf",
                kind=DocumentKind.SLIDES,
                status=DocumentStatus.READY,
                pages=10,
                rendered=10,
            )
            db.add(document)
            await db.flush()
            return document.id

    return server.call(insert())


async def page_turn_latencies(server: LiveServer, count: int) -> list[float]:
    seeded = server.call(seed_org(server.app, "bench", {"host@bench.example": Role.HOST}))
    document_id = await _add_document(server, seeded.org_id, seeded.users["host@bench.example"])
    host, guest = Browser(server.url), Browser(server.url)
    await host.sign_in("host@bench.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    path = f"/ws/rooms/{room_id}"
    samples = []
    async with (
        host.websocket(path, [SUBPROTOCOL]) as host_ws,
        guest.websocket(path, [SUBPROTOCOL]) as guest_ws,
    ):

        async def drain_host() -> None:  # the host hears every state too; keep its socket read
            async for _frame in host_ws:
                pass

        drainer = asyncio.create_task(drain_host())
        await receive_type(guest_ws, "doc.state")
        await host_ws.send(json.dumps({"type": "doc.open", "document_id": document_id}))
        await until(guest_ws, "doc.state", page=1)
        for i in range(count):
            page = 2 + i % 9  # 2..10, never the page already shown
            started = time.perf_counter()
            await host_ws.send(json.dumps({"type": "doc.page", "page": page}))
            await until(guest_ws, "doc.state", page=page)
            samples.append(time.perf_counter() - started)
        drainer.cancel()
    await host.aclose()
    await guest.aclose()
    return samples


async def page_turn_bench(turns: int = 500) -> dict[str, float]:
    async with app_and_echo() as (app_server, echo_url):
        echo = await echo_latencies(echo_url, turns)
        turn = await page_turn_latencies(app_server, turns)
    return {
        "page_turn_p50_ms": percentile_ms(turn, 50),
        "page_turn_p99_ms": percentile_ms(turn, 99),
        "echo_p50_ms": percentile_ms(echo, 50),
        "echo_p99_ms": percentile_ms(echo, 99),
    }
