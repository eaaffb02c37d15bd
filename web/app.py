"""The Starlette application: wiring settings, the store, rate limits, middleware and routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from core.clock import Clock, monotonic_clock, wall_clock
from core.errors import CSRFFailed, NotAuthenticated, NotFound, RateLimited, TsunaguError
from core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from core.slots import Slots
from core.storage import Storage, open_storage, sweep_abandoned
from core.uploads import UploadSlots
from documents.library import DocumentJobs
from store.db import create_engine, dispose, session_factory

if TYPE_CHECKING:
    from redis.asyncio import Redis
from deals.mailer import Security, SmtpSettings, make_mailer
from media import MediaRooms, MediaSettings
from recordings import retention
from recordings.quotas import FileQuotas
from recordings.recorder import Recorder
from signaling import rooms
from signaling.broker import Broker, MemoryBroker
from signaling.homes import Homes
from signaling.hub import RoomHub
from signaling.nodes import NodeRegistry
from signaling.numbers import MemoryNumberStore, NumberStore, RedisNumberStore
from signaling.redis_broker import RedisBroker
from signaling.sms import make_gateway
from web import (
    admin,
    auth,
    cards,
    customers,
    deal_settings,
    deals,
    documents,
    files,
    guests,
    login_sessions,
    meetings,
    memo_templates,
    memos,
    mypage,
    mypage_staff,
    ops,
    pages,
    quote_page,
    quote_settings,
    quotes,
    record_page,
    records,
    replay,
    reports,
    sit_in,
)
from web.middleware import (
    BodyLimitMiddleware,
    CSRFMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from web.services import Services, services
from web.settings import Settings
from web.templating import render, translator, warm_up

STATIC = Path(__file__).parent / "static"
log = structlog.get_logger("tsunagu.web")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.url.path.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept
    )


def error_response(request: Request, error: TsunaguError) -> Response:
    """The one place errors become responses: JSON with a code for scripts, a translated page for people."""
    if isinstance(error, NotAuthenticated) and not _wants_json(request) and request.method == "GET":
        return RedirectResponse("/login", status_code=303)
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None
    message = translator(request)(error.message, **error.params)
    return _respond(request, error.status, error.code, message, headers)


def _respond(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    if _wants_json(request):
        body = {"error": {"code": code, "message": message}}
        return JSONResponse(body, status_code=status, headers=headers)
    return render(request, "error.html", status_code=status, headers=headers, message=message)


async def _tsunagu_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TsunaguError)
    return error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(request, NotFound())
    return _respond(request, exc.status_code, "http_error", translator(request)(TsunaguError.message))


async def _csrf_failed(scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(Request(scope, receive), CSRFFailed())
    await response(scope, receive, send)


async def _sweep(storage: Storage) -> None:
    """Writes abandoned by a node that died (``.partial`` files, S3 multipart uploads) go when one starts."""
    removed = await sweep_abandoned(storage)
    if removed:
        log.info("abandoned writes removed", count=removed)


async def _sweep_recordings(
    sessions: async_sessionmaker[AsyncSession], storage: Storage, clock: Clock
) -> None:
    """Recordings past their org's retention go, now and every :data:`retention.SWEEP_EVERY` seconds."""
    while True:
        try:
            removed = await retention.sweep(sessions, storage, datetime.fromtimestamp(clock(), UTC))
        except Exception:
            log.exception("old recordings could not be swept")
        else:
            if removed:
                log.info("old recordings removed", count=removed)
        await asyncio.sleep(retention.SWEEP_EVERY)


async def _recover(recorder: Recorder) -> None:
    """Recordings a killed predecessor left open in the spool are finished and stored when a node starts."""
    try:
        recovered = await recorder.recover()
    except Exception:
        log.exception("recordings could not be recovered")
        return
    if recovered:
        log.info("recordings recovered", count=recovered)


def freeze_start_up_heap() -> None:
    """What start-up made (modules, compiled pages, catalogues: some 150k objects) lives as long as the
    process. Frozen out of the collector, a full collection no longer walks it: on this 2-core box that walk
    held the event loop 0.2–1 s at a time while media and memo frames waited. Once per process (a worker
    forked after it shares the frozen pages instead of touching them)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


# The collector's thresholds for a node (CPython's defaults: 700, 10, 10). A node with many rooms holds a
# few hundred tracked objects per socket for as long as the socket lives (coroutines and their frames, tasks,
# queues: ~260k for 1,000 sockets), and a collection that walks them holds the event loop. With the defaults,
# 500 rooms typing at 2 keystrokes a second (bench.memo --rate 2) saw a full collection every few seconds,
# each 55–200 ms, and the memo's p99 at 26–170 ms against a p50 of 0.5 ms. A keystroke's own objects (the
# parsed frame, queued writes, the frame sent on) live a few milliseconds: with 10,000 allocations between
# young collections instead of 700 nearly all of them are gone before one runs, so far fewer are promoted,
# and 50 young collections per middle one (instead of 10) lets what survives one of them die before it
# is moved on. The old generations then fill, and are walked, far more rarely (no full collection in 60 s of
# that bench's typing; p99 3-5 ms); a young collection walks at most 10,000 objects (median 0.2-3.6 ms here).
# Garbage cycles wait longer to be freed, but the young generation's count includes them, so a burst of them
# still starts a collection. docs/deploy.md, "The garbage collector".
GC_THRESHOLDS = (10_000, 50, 10)


def collect_rarely() -> None:
    """Set :data:`GC_THRESHOLDS` for this process (the collector's settings are the process's)."""
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings | None = None, clock: Clock = wall_clock) -> Starlette:
    settings = settings or Settings.from_env()
    engine = create_engine(settings.database_url)
    redis: Redis | None = None
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)

    def limiter(name: str, limit: int, window: float) -> RateLimiter:
        if redis is not None:
            return RedisRateLimiter(redis, limit, window, clock=clock, prefix=name)
        return MemoryRateLimiter(limit, window, clock=clock)

    sessions = session_factory(engine)
    storage = open_storage(
        settings.storage_url,
        settings.data_dir,
        access_key=settings.storage_access_key,
        secret_key=settings.storage_secret_key,
    )
    broker: Broker = RedisBroker(redis) if redis is not None else MemoryBroker()
    numbers: NumberStore = (
        RedisNumberStore(redis, clock=clock) if redis is not None else MemoryNumberStore(clock=clock)
    )

    media_settings = MediaSettings(
        stun_urls=settings.stun_urls,
        turn_urls=settings.turn_urls,
        turn_secret=settings.turn_secret,
        turn_ttl_seconds=settings.turn_ttl_seconds,
        host_addresses=settings.ice_host_addresses,
        announced_address=settings.ice_announced_address,
    )
    # A room's video is relayed by its home node, where its peer connections are negotiated. Its rules
    # (keyframe spacing, report intervals) measure intervals between packets, on their own clock: the app's
    # clock is for rules over wall time, which tests move by hand while real video flows.
    media = MediaRooms(media_settings, clock=monotonic_clock)
    # Recordings are muxed into a spool on this node's disk, then handed whole to storage.
    recorder = Recorder(sessions, storage, settings.data_dir / "recordings-spool")
    hub = RoomHub(
        broker,
        rooms.DatabaseRoomStore(sessions, meetings.find_document),
        clock=clock,
        grace=settings.rejoin_grace_seconds,
        media=media,
        memo_max_characters=settings.memo_max_characters,
        recorder=recorder,
    )
    sms = make_gateway(
        settings.sms_gateway,
        base_url=settings.sms_base_url,
        account_sid=settings.sms_account_sid,
        auth_token=settings.sms_auth_token,
        sender=settings.sms_from,
    )
    if settings.smtp_security not in Security._value2member_map_:
        raise ValueError(f"SMTP_SECURITY must be one of: {', '.join(Security)}")
    smtp = SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=Security(settings.smtp_security),
        user=settings.smtp_user,
        password=settings.smtp_password,
        sender=settings.smtp_from,
    )

    # Several nodes: each says it is alive, and how many rooms it homes, in Redis (signaling/nodes.py).
    nodes = NodeRegistry(redis, settings.node_id, hub.rooms_homed) if redis is not None else None
    # ... and new rooms go to the least-loaded node; a dead node's rooms are adopted (signaling/homes.py).
    homes = Homes(hub, nodes, broker, sessions) if nodes is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info(
            "started",
            database=engine.url.get_backend_name(),
            redis=bool(redis),
            storage=type(storage).__name__,
            node=settings.node_id,
        )
        warm_up()
        freeze_start_up_heap()
        collect_rarely()
        sweeper = asyncio.create_task(_sweep(storage))  # in the background: S3 listings take a while
        recovering = asyncio.create_task(_recover(recorder))
        retaining = asyncio.create_task(_sweep_recordings(sessions, storage, clock))
        # Documents left 処理中 by a node that died are rendered again (documents/leases.py).
        taking_over = asyncio.create_task(services(app).documents.recovering())
        if nodes is not None:
            nodes.start()
        if homes is not None:
            homes.start()
        try:
            yield
        finally:
            if homes is not None:
                await homes.aclose()
            if nodes is not None:
                await nodes.aclose()
            for task in (sweeper, recovering, retaining, taking_over):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services(app).documents.aclose()
            await hub.aclose()
            await media.aclose()
            await recorder.aclose()
            await broker.aclose()
            await sms.aclose()
            await storage.aclose()
            await dispose(engine)
            if redis is not None:
                await redis.aclose()

    app = Starlette(
        routes=[
            *guests.routes,
            *meetings.routes,
            *pages.routes,
            *auth.routes,
            *admin.routes,
            *documents.routes,
            *files.routes,
            *memo_templates.routes,
            *memos.routes,
            *cards.routes,
            *records.routes,
            *customers.routes,
            *deals.routes,
            *deal_settings.routes,
            *quotes.routes,
            *quote_page.routes,
            *quote_settings.routes,
            *record_page.routes,
            *replay.routes,
            *reports.routes,
            *sit_in.routes,
            *mypage.routes,
            *mypage_staff.routes,
            *ops.routes,
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        ],
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="tsunagu_session",
                max_age=login_sessions.LIFETIME,
                same_site="lax",
                https_only=settings.secure_cookies,
            ),
            Middleware(CSRFMiddleware, on_failure=_csrf_failed),
            # Inside the CSRF check (which reads a form body itself, up to its own limit), so that what it
            # raises reaches the app's error handler.
            Middleware(BodyLimitMiddleware),
        ],
        exception_handlers={TsunaguError: _tsunagu_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.services = Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        redis=redis,
        broker=broker,
        numbers=numbers,
        hub=hub,
        recorder=recorder,
        homes=homes,
        media=media,
        media_settings=media_settings,
        sms=sms,
        mailer=make_mailer(smtp, settings.smtp_from),
        storage=storage,
        documents=DocumentJobs(sessions, settings, storage, clock=clock),
        login_limiter=limiter("login", settings.login_failures_per_minute, 60.0),
        number_issue_limiter=limiter("number-issue", settings.number_issues_per_10_minutes, 600.0),
        wrong_number_limiter=limiter("wrong-number", settings.wrong_numbers_per_minute, 60.0),
        mypage_code_limiter=limiter("mypage-code", settings.mypage_codes_per_hour, 3600.0),
        uploads=UploadSlots(settings.uploads_per_user),
        file_quotas=FileQuotas(sessions, settings.room_files_quota_bytes, settings.org_files_quota_bytes),
        lobby_per_guest=Slots(settings.lobby_sockets_per_guest, guests.TooManySockets),
        lobby_per_address=Slots(settings.lobby_sockets_per_address, guests.TooManySockets),
    )
    return app
