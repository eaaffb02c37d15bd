"""Sending SMS (the join link) through a pluggable gateway, and the outbox every attempt is kept in.

A gateway is a small seam in the style of httpx transports: ``send(to, body)`` returns an
:class:`SmsResult` and never raises for a gateway failure. :func:`send_sms` records every attempt as an
:class:`~signaling.models.SmsMessage` (the admin's SMS送信履歴) and turns a failure into :class:`SmsFailed`
for the host.

- :class:`OutboxGateway` (``SMS_GATEWAY=outbox``, the default) sends nothing; the message is only stored.
- :class:`TwilioGateway` (``SMS_GATEWAY=twilio``) posts to a Twilio-compatible REST API.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, TsunaguError
from signaling.models import SmsMessage, SmsStatus

log = structlog.get_logger("tsunagu.sms")

GATEWAYS = ("outbox", "twilio")
_PROVIDER_ID_LENGTH = 64  # SmsMessage.provider_id is String(64)
_DETAIL_LENGTH = 500  # enough of a provider's answer to diagnose it, not a whole HTML error page


class SmsFailed(TsunaguError):
    """The gateway refused the message or could not be reached; the attempt is in the outbox as ``sms``."""

    code = "sms_failed"
    status = 502
    message = N_(
        "The SMS could not be sent. Please check the number and try again, or use the connect number instead."
    )

    def __init__(self, sms: SmsMessage | None = None) -> None:
        super().__init__()
        self.sms = sms


@dataclass(frozen=True)
class SmsResult:
    status: SmsStatus  # STORED (outbox), SENT (accepted by the provider) or FAILED
    provider_id: str = ""  # the provider's message id, when it gave one
    error: str = ""  # technical detail for the outbox row (English, for operators; never shown as UI text)


class SmsGateway(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    async def send(self, to: str, body: str) -> SmsResult:
        """Send ``body`` to the E.164 number ``to``. Gateway failures are returned as FAILED, never raised."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most gateways hold nothing to release
        """Release connections; the gateway is not used afterwards."""


class OutboxGateway(SmsGateway):
    """Sends nothing: the message is kept in the outbox, where admins read it (development, demos, trials)."""

    name = "outbox"

    async def send(self, to: str, body: str) -> SmsResult:
        # The body carries a join link, a bearer credential: it stays in the database, out of the logs.
        log.info("sms.stored", to=to, length=len(body))
        return SmsResult(SmsStatus.STORED)


class TwilioGateway(SmsGateway):
    """Twilio's Messages API, or any service speaking it: ``POST {base_url}/2010-04-01/Accounts/{sid}/
    Messages.json`` with form fields ``To``, ``From``, ``Body`` and HTTP basic auth (account SID, token).

    ``transport`` lets tests swap the network for an httpx transport; they normally use a real local server.
    """

    name = "twilio"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}/Messages.json"
        self.sender = sender
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            auth=httpx.BasicAuth(account_sid, auth_token),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    async def send(self, to: str, body: str) -> SmsResult:
        try:
            response = await self._client.post(self.url, data={"To": to, "From": self.sender, "Body": body})
        except httpx.TimeoutException as exc:
            return self._failed(to, f"no answer within {self.timeout:g} s ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return self._failed(to, f"could not reach the gateway: {type(exc).__name__}: {exc}")
        payload = _json_object(response)
        if response.is_success:
            provider_id = str(payload.get("sid") or "")[:_PROVIDER_ID_LENGTH]
            log.info("sms.sent", to=to, gateway=self.name, provider_id=provider_id)
            return SmsResult(SmsStatus.SENT, provider_id=provider_id)
        detail = f"HTTP {response.status_code}"
        if payload.get("code") is not None:
            detail += f" (code {payload['code']})"
        message = payload.get("message") or (response.text if not payload else "")
        if message:
            detail += f": {str(message).strip()}"
        return self._failed(to, detail)

    def _failed(self, to: str, error: str) -> SmsResult:
        error = error[:_DETAIL_LENGTH]
        log.warning("sms.failed", to=to, gateway=self.name, error=error)
        return SmsResult(SmsStatus.FAILED, error=error)

    async def aclose(self) -> None:
        await self._client.aclose()


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def make_gateway(
    kind: str,
    *,
    base_url: str = "https://api.twilio.com",
    account_sid: str = "",
    auth_token: str = "",
    sender: str = "",
    timeout: float = 10.0,
) -> SmsGateway:
    """The gateway named by ``SMS_GATEWAY``, from plain values (signaling does not read web's settings).

    Raises ValueError for an unknown kind, or for ``twilio`` without its account SID, token and sender.
    """
    if kind == OutboxGateway.name:
        return OutboxGateway()
    if kind == TwilioGateway.name:
        missing = [
            name
            for name, value in (
                ("SMS_ACCOUNT_SID", account_sid),
                ("SMS_AUTH_TOKEN", auth_token),
                ("SMS_FROM", sender),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"SMS_GATEWAY=twilio needs {', '.join(missing)}")
        return TwilioGateway(base_url, account_sid, auth_token, sender, timeout=timeout)
    raise ValueError(f"unknown SMS gateway {kind!r}; use one of: {', '.join(GATEWAYS)}")


async def send_sms(
    db: AsyncSession,
    gateway: SmsGateway,
    *,
    org_id: int,
    sender_id: int | None,
    room_id: str | None,
    to: str,
    body: str,
) -> SmsMessage:
    """Send ``body`` to ``to`` (E.164, see :func:`signaling.phone.normalise_mobile`) and keep the attempt.

    The attempt is added to ``db`` and flushed (not committed) as an :class:`SmsMessage` with the gateway's
    name, status, provider id and error detail, and returned when it was stored or sent.

    When the gateway fails, :class:`SmsFailed` is raised *after* the row is flushed, carrying it as
    ``exc.sms``. The row lives in the caller's transaction, and a ``signed_in`` endpoint rolls its
    transaction back when an error escapes, so a caller must commit before letting the error out, or the
    failed attempt vanishes from the outbox::

        try:
            await send_sms(db, gateway, org_id=..., sender_id=..., room_id=..., to=..., body=...)
        except SmsFailed:
            await db.commit()  # keep the failed attempt in the SMS送信履歴
            raise  # the host sees SmsFailed.message (HTTP 502)

    That commit also keeps whatever else the transaction holds (say, the join link whose SMS failed; it is
    single-use and expires, and the host can send again). The gateway is called before this function
    writes anything, but on SQLite a caller that has already written holds the write lock for the length of
    the HTTP call (at most the gateway's timeout).
    """
    result = await gateway.send(to, body)
    sms = SmsMessage(
        org_id=org_id,
        sender_id=sender_id,
        room_id=room_id,
        to=to,
        body=body,
        gateway=gateway.name,
        status=result.status,
        error=result.error,
        provider_id=result.provider_id,
    )
    db.add(sms)
    await db.flush()
    if result.status == SmsStatus.FAILED:
        raise SmsFailed(sms)
    return sms


async def org_messages(db: AsyncSession, org_id: int, limit: int = 200) -> list[SmsMessage]:
    """The org's messages, newest first (at most ``limit``); other orgs' messages are never returned."""
    rows = await db.scalars(
        select(SmsMessage)
        .where(SmsMessage.org_id == org_id)
        .order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc())
        .limit(limit)
    )
    return list(rows)


async def room_sms(db: AsyncSession, room_id: str) -> SmsMessage | None:
    """The last SMS sent (or stored, or failed) for a room: the one that carried its join link."""
    return await db.scalar(
        select(SmsMessage).where(SmsMessage.room_id == room_id).order_by(SmsMessage.id.desc()).limit(1)
    )
