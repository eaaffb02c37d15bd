"""The services one app holds (settings, database, rooms, limits…), as one typed object on ``app.state``.

Handlers reach them with ``services(request)``; tests with ``services(app)``. One dataclass instead of loose
``app.state`` attributes, so that mypy checks every use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from core.clock import Clock
    from core.ratelimit import RateLimiter
    from core.slots import Slots
    from core.storage import Storage
    from core.uploads import UploadSlots
    from deals.mailer import Mailer
    from documents.library import DocumentJobs
    from media import MediaRooms, MediaSettings
    from recordings.quotas import FileQuotas
    from recordings.recorder import Recorder
    from signaling.broker import Broker
    from signaling.homes import Homes
    from signaling.hub import RoomHub
    from signaling.numbers import NumberStore
    from signaling.sms import SmsGateway
    from web.settings import Settings


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis | None
    broker: Broker
    numbers: NumberStore
    hub: RoomHub
    recorder: Recorder  # レコログ: writes recordings (recordings.recorder)
    homes: Homes | None  # several nodes (REDIS_URL): placement and adoption of rooms
    media: MediaRooms
    media_settings: MediaSettings
    sms: SmsGateway
    mailer: Mailer  # email notices (deals.notices): SMTP, or the outbox only
    storage: Storage
    documents: DocumentJobs
    login_limiter: RateLimiter
    number_issue_limiter: RateLimiter
    wrong_number_limiter: RateLimiter
    mypage_code_limiter: RateLimiter  # one-time codes sent per マイページ link (web.mypage)
    uploads: UploadSlots  # uploads at once per sender (web.uploads)
    file_quotas: FileQuotas  # bytes of files per meeting and per org (web.files)
    lobby_per_guest: Slots  # lobby sockets at once per guest browser (web.guests)
    lobby_per_address: Slots  # ... and per client address


def services(holder: HTTPConnection | Starlette) -> Services:
    """The services of the app serving ``holder`` (a request or WebSocket), or of the app ``holder``."""
    app = holder if isinstance(holder, Starlette) else holder.app
    found: Services = app.state.services
    return found
