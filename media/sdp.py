"""Edits to the server's answer SDP: the announced address for a node behind NAT."""

from __future__ import annotations

import ipaddress


def announce(sdp: str, address: str) -> str:
    """Put ``address`` in place of the host candidates' (and the connection line's) addresses.

    The sockets stay bound to the local addresses; a NAT in front of the node maps ``address`` onto them
    (what mediasoup's ``announcedIp`` does).
    """
    family = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) > 7 and parts[7] == "host":
                parts[4] = address
                line = " ".join(parts)
        elif line.startswith("c=IN "):
            line = f"c=IN {family} {address}"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
