"""``tsunagu serve`` and the test harness serve the app one way (``web.serving``): the same uvicorn
configuration and the same event loop, uvloop, so what the tests run is what users run."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from core.clock import ManualClock
from tests.harness.live import LiveServer
from web import serving
from web.app import GC_THRESHOLDS, create_app
from web.cli import main
from web.settings import Settings

SHARED = (
    "loop",
    "lifespan",
    "log_config",
    "access_log",
    "http",
    "ws",
    "ws_per_message_deflate",
    "interface",
    "proxy_headers",
)


def test_tsunagu_serve_and_the_live_server_share_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(serving, "serve", served.append)  # what cmd_serve would run, not run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    for name in ("DATABASE_URL", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_SELF_SIGNED", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--host", "127.0.0.1", "--port", "8123"]) == 0
    (config,) = served
    live = LiveServer(Starlette()).server.config
    assert config.loop == serving.LOOP == "uvloop"
    assert {name: getattr(config, name) for name in SHARED} == {name: getattr(live, name) for name in SHARED}
    assert (config.host, config.port) == ("127.0.0.1", 8123)


def test_the_live_server_runs_on_uvloop() -> None:
    server = LiveServer(Starlette())
    server.start()
    try:
        assert isinstance(server.loop, uvloop.Loop)
    finally:
        server.stop()


async def test_async_tests_run_on_the_production_loop() -> None:
    import asyncio

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


async def test_the_start_up_heap_is_kept_out_of_full_collections(app: Starlette) -> None:
    # Modules, compiled pages and catalogues live as long as the process: a full collection must not walk
    # them each time (it held the event loop up to a second here). The app's own factory is one of them.
    assert gc.get_freeze_count() > 10_000
    assert not any(found is create_app for found in gc.get_objects())


async def test_a_node_sets_the_collectors_thresholds_when_it_starts(
    settings: Settings, clock: ManualClock
) -> None:
    # With CPython's defaults (700, 10, 10) a full collection walked 1,000 sockets' objects every few seconds,
    # holding the event loop 55–200 ms each time (bench.memo --rate 2, bench/README.md): a node sets its own.
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        app = create_app(settings, clock=clock)
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == GC_THRESHOLDS
            assert GC_THRESHOLDS[0] > 700 and GC_THRESHOLDS[1] > 10
    finally:
        gc.set_threshold(*before)


async def _hello(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


@pytest.mark.parametrize("accepted", [False, True])
async def test_websocket_compression_offered_by_a_browser_is_declined(accepted: bool) -> None:
    # Browsers offer permessage-deflate on every socket; our frames are small JSON, for which it cost 20–60 µs
    # of server CPU per keystroke (bench.memo --deflate --server-deflate). Accepted only when a bench asks.
    app = Starlette(routes=[WebSocketRoute("/hello", _hello)])
    server = LiveServer(app, per_message_deflate=True) if accepted else LiveServer(app)
    assert server.server.config.ws_per_message_deflate is accepted
    server.start()
    try:
        url = server.url.replace("http", "ws", 1) + "/hello"
        async with connect(url, compression="deflate") as websocket:
            assert await websocket.recv() == "hello"
            assert websocket.response is not None
            negotiated = websocket.response.headers.get("Sec-WebSocket-Extensions")
    finally:
        server.stop()
    if accepted:
        assert negotiated is not None and "permessage-deflate" in negotiated
    else:
        assert negotiated is None
