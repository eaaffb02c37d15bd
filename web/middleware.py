"""ASGI middleware: request ids and logging, metrics, CSRF protection, and the security headers.

Pure ASGI rather than ``BaseHTTPMiddleware`` so WebSockets and streamed bodies pass straight through.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
import uuid
from urllib.parse import parse_qs

import structlog
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import N_, InvalidInput

log = structlog.get_logger("tsunagu.http")

REQUESTS = Counter("tsunagu_http_requests_total", "HTTP requests served", ["method", "route", "status"])
LATENCY = Histogram("tsunagu_http_request_seconds", "HTTP request duration", ["method", "route"])

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_SESSION_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Forms are small, but the org settings hold three texts of up to 10,000 characters, and a Japanese
# character is 9 bytes once URL-encoded.
MAX_FORM_BYTES = 512 * 1024


# Everything the pages use comes from this origin: scripts only from files (no inline script, no eval; the
# virtual background's WebAssembly needs 'wasm-unsafe-eval'), styles only from files (no style attributes),
# images and video also from blob: and data: URLs the pages make (名刺 image, camera frames). No page of ours
# may be framed by another site (clickjacking), nor may it frame anything.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "worker-src 'self' blob:",
        "frame-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # a join link's token never leaves in a Referer
]


def csrf_token(session: dict[str, object]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def _route_name(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestContextMiddleware:
    """Gives each request an id (kept from ``X-Request-ID`` when sane), logs one line, counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isascii() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            # A WebSocket's frames skip the wrapper: only an HTTP response has headers to add, and a room
            # channel sends thousands of frames a second.
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_name(scope)
            if scope["type"] == "http":
                REQUESTS.labels(scope["method"], route, str(status)).inc()
                LATENCY.labels(scope["method"], route).observe(elapsed)
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (a header the app set itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _value in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(InvalidInput):
    code = "body_too_large"
    status = 413
    message = N_("The request is too large.")


MAX_BODY_BYTES = 1024 * 1024  # forms and JSON; uploads have limits of their own
UPLOAD_PATHS = re.compile(r"^/api/(documents|rooms/[^/]+/files|card/images|quotes/\d+/import)$")


class BodyLimitMiddleware:
    """Request bodies other than uploads (forms, JSON) are small: past :data:`MAX_BODY_BYTES`, declared or
    counted, reading the body raises :class:`BodyTooLarge` (413) inside the app, whose error handler answers.
    Uploads (:data:`UPLOAD_PATHS`) stream through ``web.uploads`` with limits of their own."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or UPLOAD_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        received = 0

        async def bounded() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.limit:
                raise BodyTooLarge()
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge()
            return message

        await self.app(scope, bounded, send)


class CSRFMiddleware:
    """Refuses state-changing requests that do not carry the session's CSRF token.

    Forms send it as the ``csrf_token`` field, scripts as the ``X-CSRF-Token`` header. Must sit inside
    Starlette's ``SessionMiddleware``. Refusals go to ``on_failure`` (an ASGI app) to render a clear message.
    """

    def __init__(self, app: ASGIApp, on_failure: ASGIApp) -> None:
        self.app = app
        self.on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        expected = scope.get("session", {}).get(CSRF_SESSION_KEY)
        headers = Headers(scope=scope)
        supplied = headers.get(CSRF_HEADER)
        if supplied is None and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            body, too_large = await _read_body(receive, MAX_FORM_BYTES)
            if not too_large:
                supplied = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [None])[0]
            receive = _replay(body, receive)
        if not isinstance(expected, str) or not supplied or not hmac.compare_digest(expected, supplied):
            await self.on_failure(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, upstream: Receive) -> Receive:
    """Hand the already-read body to the app once, then pass through (disconnect notices)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive
