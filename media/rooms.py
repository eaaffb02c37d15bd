"""All rooms' media on this node: which seats are in a room, forwarding between them, containment of a
room's failures, and the one timer that lets every peer send its reports when they are due."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiortc.rtp import RtpPacket

from core.clock import Clock, monotonic_clock
from media.forward import Counters, Inbound
from media.peer import Peer
from media.settings import MediaSettings

TICK = 0.1  # seconds between looks at whose reports are due (the rules themselves read the clock)

log = structlog.get_logger("tsunagu.media")


class Room:
    """The seats of one room; forwards each seat's m-line *i* to m-line *i* of every other seat."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.counters = Counters()
        self.peers: dict[str, Peer] = {}
        self._order: tuple[Peer, ...] = ()  # snapshot iterated per packet while seats may change
        self.lock = asyncio.Lock()

    def seat(self, seat: str, peer: Peer | None) -> Peer | None:
        """Put ``peer`` in ``seat`` (or empty it); the previous peer of the seat, to close."""
        old = self.peers.pop(seat, None)
        if peer is not None:
            self.peers[seat] = peer
        self._order = tuple(self.peers.values())
        if old is not None:  # what it reported as a subscriber no longer holds the publishers down
            for other in self._order:
                for inbound in other.inbounds.values():
                    inbound.feedback.forget(old)
        return old

    def forward(
        self,
        publisher: Peer,
        inbound: Inbound,
        data: bytes,
        ssrc: int,
        seq: int,
        timestamp: int,
        payload_size: int,
        now: float,
    ) -> None:
        """Send an RTP packet of ``publisher``'s ``inbound`` (``data``, its header fields and payload size
        passed) to every other seat receiving on that m-line."""
        counters = self.counters
        packet: RtpPacket | None = None  # parsed only for a receiver that needs its extensions rewritten
        for peer in self._order:
            if peer is publisher:
                continue
            outbound = (
                peer.outbounds.get(inbound.mline)
                if peer.sources is None
                else peer.receiving(publisher.seat, inbound.mline)
            )
            if outbound is None:
                continue
            if outbound.copies_header_of(inbound):
                out = outbound.rewrite_header(inbound, data, ssrc, seq, timestamp, now)
            else:
                if packet is None:
                    packet = publisher.parse(data)
                    if packet is None:
                        counters.packets_dropped += 1
                        return
                out = outbound.rewrite(inbound, packet, ssrc, seq, timestamp, now)
            if out is None:
                continue
            if peer.send(outbound.mline, out):
                counters.packets_forwarded += 1
                counters.bytes_forwarded += len(out)
                outbound.packets += 1
                outbound.octets += payload_size
            if outbound.rebased:
                publisher.ask_keyframe(inbound, fir=False)

    def keyframe_for(self, subscriber: Peer, mline: int, fir: bool) -> None:
        """Ask whoever feeds ``subscriber``'s m-line for a keyframe."""
        outbound = subscriber.outbounds.get(mline)
        source = outbound.source if outbound is not None else None
        watched = subscriber.source_of(mline)  # an observer's m-line watches one seat's m-line
        for peer in self._order:
            if peer is subscriber or peer.closed or (watched is not None and peer.seat != watched[0]):
                continue
            inbound = peer.inbounds.get(mline if watched is None else watched[1])
            if inbound is not None and (source is None or source.closed or inbound is source):
                peer.ask_keyframe(inbound, fir)

    def publisher_of(self, inbound: Inbound) -> Peer | None:
        """The seat's peer that publishes ``inbound`` (None once it left)."""
        for peer in self._order:
            if peer.inbounds.get(inbound.mline) is inbound:
                return peer
        return None

    def tick(self, now: float) -> None:
        """Let each peer send the reports that are due."""
        for peer in self._order:
            try:
                peer.tick(now)
            except Exception as exc:
                self.contain(exc, "rtcp-report")

    def contain(self, exc: Exception, where: str) -> None:
        """Count and log a failure of this room's forwarding; its streams resume in a new segment."""
        for peer in self._order:
            for outbound in peer.outbounds.values():
                outbound.resync()
        self.counters.forwarding_errors += 1
        errors = self.counters.forwarding_errors
        if errors <= 3 or errors % 1000 == 0:  # a broken stream would otherwise log every packet
            log.error("media.forwarding_failed", room=self.room_id, where=where, errors=errors, exc_info=exc)


class MediaRooms:
    """All rooms' media on this node. ``clock``: the time the relay's rules read (keyframe spacing, report
    intervals, how long a report counts); a ``ManualClock`` in tests."""

    def __init__(self, settings: MediaSettings, clock: Clock = monotonic_clock) -> None:
        self.settings = settings
        self.clock = clock
        self._rooms: dict[str, Room] = {}
        self._retired = Counters()  # counts of closed rooms, so totals never go down
        self._ticker: asyncio.Task[None] | None = None

    async def answer(
        self, room_id: str, seat: str, offer_sdp: str, sources: tuple[tuple[str, int], ...] | None = None
    ) -> str:
        """Create the seat's peer connection (closing a previous one of the same seat, e.g. a restart/rejoin),
        apply the browser's offer, return the answer SDP (complete, with candidates: no trickle ICE).

        ``sources``: a receive-only observer watching these (seat, m-line) streams (see ``Peer``)."""
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Room(room_id)
        async with room.lock:
            old = room.seat(seat, None)
            if old is not None:
                await old.close()
            peer = Peer(room, seat, self.settings, self.clock, sources)
            try:
                answer = await peer.answer(offer_sdp)
            except BaseException:
                await peer.close()
                raise
            room.seat(seat, peer)
            log.info("media.answered", room=room_id, seat=seat)
            return answer

    async def leave(self, room_id: str, seat: str) -> None:
        """Close that seat's peer connection."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        async with room.lock:
            old = room.seat(seat, None)
            if old is not None:
                await old.close()

    async def close_room(self, room_id: str) -> None:
        """Close every peer connection of the room."""
        room = self._rooms.pop(room_id, None)
        if room is None:
            return
        async with room.lock:
            peers = list(room.peers.values())
            for seat in list(room.peers):
                room.seat(seat, None)
            await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
        self._retired.add(room.counters)

    async def aclose(self) -> None:
        """Close everything (server shutdown)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await asyncio.gather(*(self.close_room(room_id) for room_id in list(self._rooms)))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = self.clock()
            for room in list(self._rooms.values()):
                room.tick(now)

    def counters(self, room_id: str | None = None) -> Counters:
        """A copy of one room's counters, or the node's totals."""
        total = Counters()
        if room_id is not None:
            room = self._rooms.get(room_id)
            if room is not None:
                total.add(room.counters)
            return total
        total.add(self._retired)
        for room in self._rooms.values():
            total.add(room.counters)
        return total

    def room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)
