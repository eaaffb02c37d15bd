"""Sending email: a small seam like signaling/sms.py's gateways.

``send(message)`` returns a :class:`MailResult` and never raises for a delivery failure: a refused or
unreachable server is a FAILED result with its error, which the outbox keeps (deals/notices.py).

- :class:`OutboxMailer` (no ``SMTP_HOST``) sends nothing; the message is only kept in the outbox.
- :class:`SmtpMailer` speaks SMTP through aiosmtplib: plain, STARTTLS or implicit TLS, with optional login.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from email.message import EmailMessage
from typing import ClassVar

import aiosmtplib
import structlog

log = structlog.get_logger("tsunagu.mail")
_DETAIL_LENGTH = 500


class Security(enum.StrEnum):
    """``SMTP_SECURITY``: how the connection is protected."""

    STARTTLS = "starttls"  # plain connection upgraded by STARTTLS (port 587); refused if not offered
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # plain (a relay on the same host or network only)


class MailStatus(enum.StrEnum):
    SENT = "sent"
    STORED = "stored"
    FAILED = "failed"


@dataclass(frozen=True)
class MailResult:
    status: MailStatus
    error: str = ""  # technical detail for the outbox (English, for operators)


class Mailer(abc.ABC):
    name: ClassVar[str]
    sender: str

    @abc.abstractmethod
    async def send(self, message: EmailMessage) -> MailResult:
        """Send ``message`` (From: ``sender`` when missing). Failures are returned, never raised."""


class OutboxMailer(Mailer):
    name = "outbox"

    def __init__(self, sender: str = "tsunagu@localhost") -> None:
        self.sender = sender

    async def send(self, message: EmailMessage) -> MailResult:
        log.info("mail.stored", to=message["To"])
        return MailResult(MailStatus.STORED)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    user: str
    password: str
    sender: str
    timeout: float = 10.0


class SmtpMailer(Mailer):
    """One connection per message: notices are few, and a fresh connection survives a server restart."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.sender = settings.sender

    async def send(self, message: EmailMessage) -> MailResult:
        s = self.settings
        if "From" not in message:
            message["From"] = s.sender
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.user or None,
                password=s.password or None,
                use_tls=s.security == Security.TLS,
                start_tls=True if s.security == Security.STARTTLS else False,
                timeout=s.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:_DETAIL_LENGTH]
            log.warning("mail.failed", to=message["To"], error=error)
            return MailResult(MailStatus.FAILED, error)
        log.info("mail.sent", to=message["To"])
        return MailResult(MailStatus.SENT)


def make_mailer(settings: SmtpSettings | None, sender: str = "tsunagu@localhost") -> Mailer:
    """SMTP when a host is configured, else the outbox only."""
    return OutboxMailer(sender) if settings is None or not settings.host else SmtpMailer(settings)
