"""Which address a customer's phone can open: the base of the guest page URL, its QR code and SMS links.

A host who opens tsunagu at ``http://127.0.0.1:8000`` (what ``make run`` prints) would otherwise hand the
customer links to 127.0.0.1, which is the phone itself. :func:`phone_address` picks, in order: ``PUBLIC_URL``;
the address the host's browser used, when it is not loopback; a LAN address of this machine when the server
listens on all interfaces; else it keeps the loopback address and says how to serve for phones. It also says
when phones would get the page over plain HTTP, where they cannot use the camera.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import N_
from web.settings import Settings
from web.tls import IPAddress, lan_addresses

SERVE_FOR_PHONES = "tsunagu serve --self-signed --host 0.0.0.0"

LOOPBACK_ONLY = N_(
    "This address opens only on this computer: a customer's phone cannot reach it. To connect phones on the "
    "same network, start the server with {command} (or set PUBLIC_URL to an address phones can open)."
)
PLAIN_HTTP = N_(
    "Phones open this address over plain http://, where they cannot use the camera. Start the server with "
    "{command} (or set PUBLIC_URL to an https:// address) so that the customer's camera works."
)


@dataclass(frozen=True)
class PhoneAddress:
    base: str  # scheme://host[:port], no trailing slash
    reachable: bool  # False: only this computer can open ``base``
    hint: str | None = None  # a message id (with {command}) to show the host, or None when all is well

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(address: IPAddress) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def phone_address(
    settings: Settings, request_base: str, lan: Callable[[], Sequence[IPAddress]] = lan_addresses
) -> PhoneAddress:
    """Where phones can open this server, given how the host's browser reached it (``request_base``)."""
    if settings.public_url:
        return PhoneAddress(settings.public_url, reachable=True)
    base = request_base.rstrip("/")
    parts = urlsplit(base)
    host = parts.hostname or ""
    plain = parts.scheme == "http"
    if not _is_loopback(host):
        return PhoneAddress(base, reachable=True, hint=PLAIN_HTTP if plain else None)
    port = f":{parts.port}" if parts.port else ""
    hint = PLAIN_HTTP if plain else None
    try:
        bound = ipaddress.ip_address(settings.host)
    except ValueError:
        if not _is_loopback(settings.host):  # a name given with --host: the operator knows it resolves
            return PhoneAddress(f"{parts.scheme}://{settings.host}{port}", reachable=True, hint=hint)
        return PhoneAddress(base, reachable=False, hint=LOOPBACK_ONLY)
    if bound.is_unspecified:  # all interfaces: the first LAN address of the same family
        found = [a for a in lan() if a.version == 4 or bound.version == 6]
        if found:
            return PhoneAddress(f"{parts.scheme}://{_url_host(found[0])}{port}", reachable=True, hint=hint)
    elif not bound.is_loopback:
        return PhoneAddress(f"{parts.scheme}://{_url_host(bound)}{port}", reachable=True, hint=hint)
    return PhoneAddress(base, reachable=False, hint=LOOPBACK_ONLY)
