"""Where the relay hands forwarded packets besides the other seats: a packet sink (a recorder).

``media`` knows nothing of recordings: the hub (or the web wiring) attaches an object with this shape to a
room's media (``MediaRooms.record``), and the relay calls it on the event loop for every RTP packet a seat
publishes, right after forwarding it. A sink must return at once (hand the packet to a bounded queue and
do its work elsewhere): forwarding never waits for it. An exception it raises is contained like any other
forwarding failure of the room.
"""

from __future__ import annotations

from typing import Protocol


class PacketSink(Protocol):
    def packet(self, seat: str, mline: int, kind: str, data: bytes, header: int, now: float) -> bool:
        """An RTP packet ``data`` (its header ``header`` bytes long) that ``seat`` published on ``mline``
        (``kind``: ``video`` or ``audio``; see ``media.peer.LAYOUT``), arrived at ``now`` (the relay's
        clock). True when the sink waits for a keyframe of that stream: the relay then asks the publisher
        for one (spaced as any keyframe request)."""
        ...
