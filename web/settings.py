"""Settings, read once from the environment (and an optional ``.env`` file in the working directory).

Every setting is documented in README.md's settings table; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    redis_url: str | None = None
    # Files, documents and recordings: unset → DATA_DIR on this box; s3://bucket/prefix?endpoint=… → shared.
    storage_url: str | None = None
    # S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, .env too); empty: botocore's own sources.
    storage_access_key: str = field(default="", repr=False)
    storage_secret_key: str = field(default="", repr=False)
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: str = "json"  # "json" (one line per event) or "console"
    log_level: str = "info"
    # SMS: "outbox" keeps messages in the database; "twilio" posts to a Twilio-compatible HTTP API.
    sms_gateway: str = "outbox"
    sms_base_url: str = "https://api.twilio.com"
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    # Email notices (deals.mailer): no SMTP_HOST keeps them in the outbox only. Security: starttls, tls, none.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "tsunagu@localhost"
    # ICE: STUN/TURN URLs; TURN credentials are minted from turn_secret (coturn's REST scheme).
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_seconds: int = 3600
    ice_host_addresses: tuple[str, ...] = ()
    ice_announced_address: str = ""
    login_failures_per_minute: int = 10
    node_id: str = "local"
    workers: int = 1  # processes `tsunagu serve` runs on this box, sharing its socket (web/workers.py)
    number_issues_per_10_minutes: int = 20
    wrong_numbers_per_minute: int = 5
    join_link_ttl_minutes: int = 30
    rejoin_grace_seconds: int = 300
    # Video is optional: a peer connection not connected this long after its offer means "no video (network)".
    video_connect_seconds: float = 10.0
    # Documents (資料): upload size, page count, and the worker's limits (documents.library): CPU time, with
    # wall-clock nets (the render limit's three times, and the validation timeout) behind it.
    document_max_bytes: int = 50 * 1024 * 1024
    document_max_pages: int = 300
    document_render_timeout_seconds: float = 120.0
    document_validation_cpu_seconds: float = 5.0
    document_validation_timeout_seconds: float = 60.0
    # ファイル送信: the largest file one send may carry, and what a meeting and an org may hold (web.files).
    room_file_max_bytes: int = 50 * 1024 * 1024
    room_files_quota_bytes: int = 200 * 1024 * 1024
    org_files_quota_bytes: int = 10 * 1024 * 1024 * 1024
    # Every upload (web.uploads): a minimum rate after a grace period, and uploads at once per sender.
    upload_grace_seconds: float = 10.0
    upload_min_bytes_per_second: int = 8 * 1024
    uploads_per_user: int = 3
    # The room channel (web.meetings, signaling.room): messages per second per connection, the memo's length.
    room_messages_per_second: float = 60.0
    room_message_burst: int = 240
    memo_max_characters: int = 100_000
    # The lobby (web.guests): sockets at once per guest browser and per client address.
    lobby_sockets_per_guest: int = 3
    lobby_sockets_per_address: int = 50
    # What a guest may still fetch after its meeting ended (files, memo.txt, document pages), in hours.
    guest_access_after_end_hours: float = 24.0
    # The guest マイページ (web.mypage): link and session lifetimes, codes sent per link an hour.
    mypage_link_days: float = 21.0
    mypage_session_hours: float = 72.0
    mypage_codes_per_hour: int = 5
    # TLS served by tsunagu itself (web.tls): a given certificate and key, or a self-signed one (LAN trials).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_self_signed: bool = False
    tls_names: tuple[str, ...] = ()  # extra names the self-signed certificate covers

    @property
    def serves_tls(self) -> bool:
        return self.tls_cert_file is not None or self.tls_self_signed

    @property
    def secure_cookies(self) -> bool:
        # Behind a TLS-terminating proxy only PUBLIC_URL tells us the browser speaks https.
        return self.serves_tls or bool(self.public_url and self.public_url.startswith("https://"))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, dotenv: Path | None = None) -> Settings:
        env = _read_dotenv(dotenv if dotenv is not None else Path(".env"))
        env.update(os.environ if environ is None else environ)
        data_dir = Path(env.get("DATA_DIR") or "var").resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'tsunagu.db'}"
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            secret_key=env.get("SECRET_KEY") or _stored_secret_key(data_dir),
            redis_url=env.get("REDIS_URL") or None,
            storage_url=env.get("STORAGE_URL") or None,
            storage_access_key=env.get("AWS_ACCESS_KEY_ID", ""),
            storage_secret_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
            public_url=(env.get("PUBLIC_URL") or "").rstrip("/") or None,
            host=env.get("HOST") or "127.0.0.1",
            port=int(env.get("PORT") or 8000),
            log_format=env.get("LOG_FORMAT") or "json",
            log_level=env.get("LOG_LEVEL") or "info",
            sms_gateway=env.get("SMS_GATEWAY") or "outbox",
            sms_base_url=env.get("SMS_BASE_URL") or "https://api.twilio.com",
            sms_account_sid=env.get("SMS_ACCOUNT_SID", ""),
            sms_auth_token=env.get("SMS_AUTH_TOKEN", ""),
            sms_from=env.get("SMS_FROM", ""),
            smtp_host=env.get("SMTP_HOST", ""),
            smtp_port=int(env.get("SMTP_PORT") or 587),
            smtp_security=(env.get("SMTP_SECURITY") or "starttls").lower(),
            smtp_user=env.get("SMTP_USER", ""),
            smtp_password=env.get("SMTP_PASSWORD", ""),
            smtp_from=env.get("SMTP_FROM") or "tsunagu@localhost",
            stun_urls=_split(env.get("STUN_URLS", "")),
            turn_urls=_split(env.get("TURN_URLS", "")),
            turn_secret=env.get("TURN_SECRET", ""),
            turn_ttl_seconds=int(env.get("TURN_TTL_SECONDS") or 3600),
            ice_host_addresses=_split(env.get("ICE_HOST_ADDRESSES", "")),
            ice_announced_address=env.get("ICE_ANNOUNCED_ADDRESS", ""),
            login_failures_per_minute=int(env.get("LOGIN_FAILURES_PER_MINUTE") or 10),
            node_id=env.get("NODE_ID") or socket.gethostname(),
            workers=int(env.get("WORKERS") or 1),
            number_issues_per_10_minutes=int(env.get("NUMBER_ISSUES_PER_10_MINUTES") or 20),
            wrong_numbers_per_minute=int(env.get("WRONG_NUMBERS_PER_MINUTE") or 5),
            join_link_ttl_minutes=int(env.get("JOIN_LINK_TTL_MINUTES") or 30),
            rejoin_grace_seconds=int(env.get("REJOIN_GRACE_SECONDS") or 300),
            video_connect_seconds=float(env.get("VIDEO_CONNECT_SECONDS") or 10),
            document_max_bytes=int(env.get("DOCUMENT_MAX_BYTES") or 50 * 1024 * 1024),
            document_max_pages=int(env.get("DOCUMENT_MAX_PAGES") or 300),
            document_render_timeout_seconds=float(env.get("DOCUMENT_RENDER_TIMEOUT_SECONDS") or 120),
            document_validation_cpu_seconds=float(env.get("DOCUMENT_VALIDATION_CPU_SECONDS") or 5),
            document_validation_timeout_seconds=float(env.get("DOCUMENT_VALIDATION_TIMEOUT_SECONDS") or 60),
            room_file_max_bytes=int(env.get("ROOM_FILE_MAX_BYTES") or 50 * 1024 * 1024),
            room_files_quota_bytes=int(env.get("ROOM_FILES_QUOTA_BYTES") or 200 * 1024 * 1024),
            org_files_quota_bytes=int(env.get("ORG_FILES_QUOTA_BYTES") or 10 * 1024 * 1024 * 1024),
            upload_grace_seconds=float(env.get("UPLOAD_GRACE_SECONDS") or 10),
            upload_min_bytes_per_second=int(env.get("UPLOAD_MIN_BYTES_PER_SECOND") or 8 * 1024),
            uploads_per_user=int(env.get("UPLOADS_PER_USER") or 3),
            room_messages_per_second=float(env.get("ROOM_MESSAGES_PER_SECOND") or 60),
            room_message_burst=int(env.get("ROOM_MESSAGE_BURST") or 240),
            memo_max_characters=int(env.get("MEMO_MAX_CHARACTERS") or 100_000),
            lobby_sockets_per_guest=int(env.get("LOBBY_SOCKETS_PER_GUEST") or 3),
            lobby_sockets_per_address=int(env.get("LOBBY_SOCKETS_PER_ADDRESS") or 50),
            guest_access_after_end_hours=float(env.get("GUEST_ACCESS_AFTER_END_HOURS") or 24),
            mypage_link_days=float(env.get("MYPAGE_LINK_DAYS") or 21),
            mypage_session_hours=float(env.get("MYPAGE_SESSION_HOURS") or 72),
            mypage_codes_per_hour=int(env.get("MYPAGE_CODES_PER_HOUR") or 5),
            tls_cert_file=_path(env.get("TLS_CERT_FILE")),
            tls_key_file=_path(env.get("TLS_KEY_FILE")),
            tls_self_signed=_flag(env.get("TLS_SELF_SIGNED", "")),
            tls_names=_split(env.get("TLS_NAMES", "")),
        )


def _stored_secret_key(data_dir: Path) -> str:
    """Generate the secret once and keep it under DATA_DIR, so sessions survive restarts."""
    path = data_dir / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: when two processes start at once, the first key written wins and both read it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
