"""Media settings and the ICE servers handed to browsers (STUN, and TURN with coturn REST credentials)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaSettings:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_seconds: int = 3600
    host_addresses: tuple[str, ...] = ()  # the addresses offered as ICE host candidates; () = the machine's
    announced_address: str = ""  # public address for a node behind NAT (like mediasoup's announcedIp)


def turn_credential(secret: str, username: str) -> str:
    """coturn's ``static-auth-secret`` scheme: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers(settings: MediaSettings, user: str, now: float) -> list[dict[str, object]]:
    """RTCIceServer dicts for the browser: {"urls": [...]} for STUN, and for TURN
    {"urls": [...], "username": f"{expiry}:{user}", "credential": base64(hmac_sha1(secret, username))}
    (coturn's TURN REST scheme, expiry = int(now) + ttl). No TURN entry when turn_secret or turn_urls is
    empty."""
    servers: list[dict[str, object]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username = f"{int(now) + settings.turn_ttl_seconds}:{user}"
        servers.append(
            {
                "urls": list(settings.turn_urls),
                "username": username,
                "credential": turn_credential(settings.turn_secret, username),
            }
        )
    return servers
