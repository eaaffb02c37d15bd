"""The ``tsunagu`` command: serve (HTTP or HTTPS), migrate, and manage orgs and users from a shell."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from core.errors import TsunaguError
from store.db import create_engine, dispose, session_factory
from store.migrate import upgrade
from store.models import Role
from web import accounts, tls, workers
from web.demo import DEMO_USERS, SAMPLE_DOCUMENT, seed_demo_from
from web.settings import Settings
from web.tls import TLSConfigError


def _print(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)


async def _in_transaction(settings: Settings, work):  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine).begin() as db:
            return await work(db)
    finally:
        await dispose(engine)


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    _print("database is up to date")


def cmd_org_add(settings: Settings, args: argparse.Namespace) -> None:
    async def work(db):  # type: ignore[no-untyped-def]
        org = await accounts.create_org(db, args.slug, args.name or args.slug)
        return org.slug

    _print(f"org added: {asyncio.run(_in_transaction(settings, work))}")


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> None:
    password = args.password
    generated = False
    if password is None:
        if sys.stdin.isatty():
            password = getpass.getpass("password: ")
        else:
            password, generated = secrets.token_urlsafe(12), True

    async def work(db):  # type: ignore[no-untyped-def]
        org = await accounts.org_by_slug(db, args.org)
        user = await accounts.add_user(db, org, args.email, args.name or "", args.role, password)
        return user.email

    email = asyncio.run(_in_transaction(settings, work))
    _print(f"user added: {email} ({args.role})" + (f" password: {password}" if generated else ""))


def demo_logins_path(settings: Settings) -> Path:
    return settings.data_dir / "demo-logins.json"


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    """Seed the demo org once; on later runs, print the same logins (passwords live only under DATA_DIR)."""
    path = demo_logins_path(settings)
    saved: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logins = asyncio.run(seed_demo_from(settings, saved))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(logins, f, indent=2)
    _print(f"demo org: the sample document {SAMPLE_DOCUMENT}, two memo templates, the hosts' business cards")
    _print("demo logins (org: demo):")
    for email, _name, role in DEMO_USERS:
        _print(f"  {role.value:<8} {email:<24} password: {logins[email]}")


def base_url(settings: Settings, host: str, port: int) -> str:
    if settings.public_url:
        return settings.public_url
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if settings.serves_tls else "http"
    return f"{scheme}://{_url_host(shown)}:{port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def tls_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """Options given to ``serve`` win over the TLS settings from the environment."""
    if args.self_signed and (args.certfile or args.keyfile):
        raise TLSConfigError("choose either a certificate (--certfile/--keyfile) or --self-signed")
    cert = Path(args.certfile).expanduser() if args.certfile else settings.tls_cert_file
    key = Path(args.keyfile).expanduser() if args.keyfile else settings.tls_key_file
    if args.self_signed:
        cert = key = None  # --self-signed on the command line beats a certificate set in .env
        self_signed = True
    elif args.certfile or args.keyfile:
        self_signed = False  # and a certificate named on the command line beats TLS_SELF_SIGNED
    else:
        self_signed = settings.tls_self_signed
        if self_signed and cert is not None:
            raise TLSConfigError("choose either TLS_CERT_FILE or TLS_SELF_SIGNED, not both")
    if key is not None and cert is None:
        raise TLSConfigError("a TLS key file was given without a certificate (--certfile / TLS_CERT_FILE)")
    names = (*settings.tls_names, *(args.tls_name or ()))
    return replace(
        settings, tls_cert_file=cert, tls_key_file=key, tls_self_signed=self_signed, tls_names=names
    )


def _phone_urls(host: str, port: int, made: tls.SelfSigned) -> list[str]:
    """Where a phone on the same network can open the server: the LAN addresses it listens on."""
    try:
        bound = ipaddress.ip_address(host)
    except ValueError:
        return [f"https://{host}:{port}/"]  # a name given with --host: the operator knows it resolves
    if bound.is_loopback:
        return []
    if not bound.is_unspecified:
        return [f"https://{_url_host(host)}:{port}/"]
    urls = [
        f"https://{_url_host(str(address))}:{port}/"
        for address in made.ip_addresses
        if not address.is_loopback and (address.version == 4 or bound.version == 6)
    ]
    urls += [f"https://{name}:{port}/" for name in made.dns_names if name != "localhost" and "." in name]
    return urls


def prepare_self_signed(settings: Settings, host: str, port: int) -> tuple[Settings, list[str]]:
    """Make (or reuse) the LAN certificate and say how to reach it; returns settings that point at it."""
    dns, addresses = tls.default_names(settings.tls_names)
    try:
        host_address = ipaddress.ip_address(host)
    except ValueError:
        dns = (*dns, *tls.split_names([host])[0])
    else:
        if not host_address.is_unspecified:
            addresses = (*addresses, host_address)
    made = tls.ensure_self_signed(settings.data_dir / "tls", dns, addresses)
    covers = ", ".join([*made.dns_names, *(str(a) for a in made.ip_addresses)])
    lines = [
        f"self-signed certificate ({'new' if made.created else 'reused'}, "
        f"valid until {made.not_after:%Y-%m-%d}): {made.cert_path}",
        f"  SHA-256 fingerprint: {made.fingerprint}",
        f"  covers: {covers}",
    ]
    phone = _phone_urls(host, port, made)
    if phone:
        lines.append("on a phone on the same network, open:")
        lines += [f"  {url}" for url in phone]
        lines.append(
            "  the phone warns that the certificate is not trusted: compare the SHA-256 fingerprint in its "
            "certificate details with the one above, then continue"
        )
    else:
        lines.append(f"listening on {host} only, which a phone cannot reach: add --host 0.0.0.0 for the LAN")
    settings = replace(settings, tls_cert_file=made.cert_path, tls_key_file=made.key_path)
    return settings, lines


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from web import serving
    from web.app import create_app
    from web.logs import configure_logging

    host = args.host or settings.host
    port = args.port or settings.port
    # The app knows where it listens: the host's screen shows phones a LAN address when it is 0.0.0.0.
    settings = replace(tls_settings(settings, args), host=host, port=port)
    tls_lines: list[str] = []
    if settings.tls_self_signed:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings, tls_lines = prepare_self_signed(settings, host, port)
    if settings.tls_cert_file is not None:
        tls.check_pair(settings.tls_cert_file, settings.tls_key_file)
    workers_count = args.workers or settings.workers
    workers.check(settings, workers_count)  # before anything is printed: refused without REDIS_URL
    configure_logging(settings.log_format, settings.log_level)
    url = base_url(settings, host, port)
    _print(
        "tsunagu is starting:",
        f"  guest page:  {url}/",
        f"  host login:  {url}/login",
        *tls_lines,
    )
    tls_files = (settings.tls_cert_file, settings.tls_key_file) if settings.tls_cert_file else None
    if workers_count > 1:
        workers.run(settings, workers_count, tls_files)
        return
    serving.serve(serving.config(create_app(settings), host, port, tls=tls_files))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsunagu", description="phone-plus-screen sales meetings")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--certfile", default=None, help="PEM certificate (chain) to serve HTTPS with")
    serve.add_argument("--keyfile", default=None, help="PEM private key of --certfile (unencrypted)")
    serve.add_argument(
        "--self-signed",
        action="store_true",
        help="serve HTTPS with a self-signed certificate kept under DATA_DIR/tls/ (for trying on a LAN)",
    )
    serve.add_argument(
        "--tls-name",
        action="append",
        metavar="NAME",
        help="another DNS name or address the self-signed certificate covers (repeatable)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes sharing the port, each its own node (needs REDIS_URL; default WORKERS or 1)",
    )
    serve.set_defaults(run=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(run=cmd_db_upgrade)

    org = sub.add_parser("org", help="organisations")
    org_sub = org.add_subparsers(dest="org_command", required=True)
    org_add = org_sub.add_parser("add", help="add an org")
    org_add.add_argument("slug")
    org_add.add_argument("--name", default="")
    org_add.set_defaults(run=cmd_org_add)

    user = sub.add_parser("user", help="users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    user_add = user_sub.add_parser("add", help="add a user to an org")
    user_add.add_argument("--org", required=True)
    user_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_add.add_argument("--email", required=True)
    user_add.add_argument("--name", default="")
    user_add.add_argument("--password", default=None, help="prompted for (or generated) when left out")
    user_add.set_defaults(run=cmd_user_add)

    sub.add_parser("demo", help="seed the demo org and print its logins").set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        args.run(settings, args)
    except TsunaguError as exc:
        print(f"error: {exc.message.format(**exc.params)}", file=sys.stderr)
        return 1
    except (TLSConfigError, workers.WorkersNeedRedis) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
