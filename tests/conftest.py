"""Fixtures shared by the whole suite: clock, databases, redis-server, the app, a live server, Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import hypothesis  # noqa: F401  # before any app freezes the heap: its trio hook asks gc for referrers
import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from core.clock import ManualClock
from store.db import create_engine, dispose, session_factory
from store.migrate import upgrade
from tests.harness.browser import CHROMIUM, launch_args, waits_pass_the_policy
from tests.harness.live import LiveServer
from tests.harness.postgres import PostgresCluster
from tests.harness.redis import RedisServer
from tests.harness.s3 import S3Server
from tests.harness.serve import Serve
from web import passwords, serving
from web.app import create_app
from web.settings import Settings

T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main thread from the
    first browser test on, which async tests and ``asyncio.run`` cannot share."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Async tests run on the event loop ``tsunagu serve`` runs on (``web.serving``); those marked
    ``both_loops`` also on asyncio's own, which the code they test supports too (``media.hooks``)."""
    factories: dict[str, Callable[[], Any]] = {serving.LOOP: serving.loop_factory()}
    if item.get_closest_marker("both_loops"):
        factories["asyncio"] = serving.loop_factory("asyncio")
    return factories


def in_thread(function: Callable[..., T], *args: object) -> T:
    """Run blocking set-up that uses ``asyncio.run`` (Alembic) away from any running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


# argon2 at its production cost (64 MiB, three passes) takes 0.1–0.8 s a hash on this box, and the suite makes
# and checks over a thousand: a third of its set-up time. What the tests check is who may sign in, so they
# hash at the smallest cost argon2id allows; the tests about the cost itself ask for production_password_cost
# (tests/test_auth.py holds the production parameters, tests/abuse/test_limits.py that a burst of them never
# holds the event loop), and ``tsunagu`` in a subprocess always uses its own defaults.
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
passwords.use_hasher(TEST_HASHER)


@pytest.fixture
def production_password_cost() -> Iterator[None]:
    """Passwords hashed at the production cost during the test: list it before the fixtures that add users."""
    passwords.use_hasher(passwords.PRODUCTION)
    yield
    passwords.use_hasher(TEST_HASHER)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (SeaweedFS) for the run; each test takes its own prefix of its bucket."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    """``tsunagu serve`` in a subprocess on a fresh install with org "acme" and its host."""
    from tests.helpers import PASSWORD

    serve = Serve(tmp_path)
    serve.add_acme_and_its_host(PASSWORD)
    serve.start()
    yield serve
    serve.stop_if_running()


@pytest.fixture
def shared_store(redis_server: RedisServer, postgres: PostgresCluster) -> dict[str, str]:
    """What several ``tsunagu serve`` nodes share: a new PostgreSQL database and an emptied Redis."""
    import redis as redis_client

    with redis_client.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    database = in_thread(asyncio.run, postgres.create_database())
    return {"DATABASE_URL": database, "REDIS_URL": redis_server.url}


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[object]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tsunagu.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind; store tests take this to run on both."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return await cluster.create_database()


@pytest.fixture
async def migrated_sessions(any_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database of each kind (``any_database_url``); the engine is disposed after."""
    await asyncio.to_thread(upgrade, any_database_url)
    engine = create_engine(any_database_url)
    try:
        yield session_factory(engine)
    finally:
        await dispose(engine)


def storage_url_for(request: pytest.FixtureRequest, kind: str) -> str | None:
    """``STORAGE_URL`` for a test: "local" is DATA_DIR (None); "s3" a fresh prefix on the run's real S3
    server, with its credentials in the environment and 5 MiB parts (S3's smallest), so that multipart
    uploads begin soon."""
    if kind == "local":
        return None
    server: S3Server = request.getfixturevalue("s3_server")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name, value in server.environment.items():
        monkeypatch.setenv(name, value)
    return server.url(f"test-{secrets.token_hex(6)}") + "&part_mb=5"


@pytest.fixture
def storage_url(request: pytest.FixtureRequest) -> str | None:
    """Where the app keeps its files: DATA_DIR, unless a test asks for S3 too with
    ``@pytest.mark.parametrize("storage_url", ["local", "s3"], indirect=True)`` (or a module overrides this
    fixture with those params)."""
    return storage_url_for(request, getattr(request, "param", "local"))


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database brought to head by the real migrations, once per run: each test gets a copy (a
    copy costs milliseconds, the ten migrations half a second, and some 600 tests take one)."""
    path = tmp_path_factory.mktemp("schema") / "tsunagu.db"
    in_thread(upgrade, f"sqlite:///{path}")
    return path


def copy_database(source: Path, destination: Path) -> None:
    # SQLite's backup API: a consistent copy whatever journal mode the migrations left.
    with contextlib.closing(sqlite3.connect(source)) as original:
        with contextlib.closing(sqlite3.connect(destination)) as copy:
            original.backup(copy)


@pytest.fixture
def settings(tmp_path: Path, storage_url: str | None, migrated_sqlite: Path) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url(tmp_path),
        storage_url=storage_url,
        secret_key=secrets.token_hex(32),
        ice_host_addresses=("127.0.0.1",),  # aioice leaves loopback out; the tests have nothing else
    )
    settings.data_dir.mkdir()
    copy_database(migrated_sqlite, tmp_path / "tsunagu.db")
    return settings


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[Starlette]:
    """The app with its lifespan run, as a server would (rooms, broker and engine are closed after)."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


def make_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as c:
        yield c


@pytest.fixture
def steady_heap() -> Iterator[None]:
    """For a test that times the live server: it runs in this process, whose heap holds what the whole suite
    has made (300k+ objects); a full collection of that heap (0.3–1 s on this box) inside a measured second
    is the test runner's cost, not the server's (``tsunagu serve`` has its own heap, its start-up frozen).
    Collected before the test; no automatic collection during it (a test's garbage is small)."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def live_server(settings: Settings, clock: ManualClock) -> Iterator[LiveServer]:
    server = LiveServer(create_app(settings, clock=clock))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """The live server with org "acme" and its host, host@acme.example."""
    from store.models import Role
    from tests.helpers import seed_org

    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST}))
    return live_server


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    waits_pass_the_policy()  # our pages forbid eval (Content-Security-Policy); see tests/harness/browser.py
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """One Chromium for the whole run (the box has 2 cores); each test opens its own contexts."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=launch_args())
    yield chromium
    chromium.close()


@pytest.fixture
def new_context(browser: Any, playwright: Any) -> Iterator[Callable[..., Any]]:
    """Open browser contexts (people) for one test: ``new_context()`` or ``new_context(device="Pixel 7")``."""
    opened: list[Any] = []

    def open_context(device: str | None = None, **options: Any) -> Any:
        profile = dict(playwright.devices[device]) if device else {}
        profile.pop("default_browser_type", None)  # Chromium plays every device here
        ctx = browser.new_context(**{"locale": "ja-JP", **profile, **options})
        ctx.set_default_timeout(10_000)
        opened.append(ctx)
        return ctx

    yield open_context
    for ctx in opened:
        ctx.close()


@pytest.fixture
def page(new_context: Callable[..., Any]) -> Any:
    return new_context().new_page()
