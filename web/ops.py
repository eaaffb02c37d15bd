"""Operations endpoints: health for load balancers, metrics for Prometheus."""

from __future__ import annotations

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from store.db import ping
from web.services import services

log = structlog.get_logger("tsunagu.ops")


async def healthz(request: Request) -> Response:
    try:
        await ping(services(request).engine)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check failed", error=str(exc))
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
