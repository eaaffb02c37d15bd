"""All rooms' media on this node: which seats are in a room, forwarding between them, and containment of a
room's failures."""

from __future__ import annotations

import asyncio

import structlog
from aiortc.rtp import RtpPacket

from media.forward import Counters, Inbound
from media.peer import Peer
from media.settings import MediaSettings

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
        return old

    def forward(
        self, publisher: Peer, inbound: Inbound, data: bytes, ssrc: int, seq: int, timestamp: int, now: float
    ) -> None:
        """Send an RTP packet of ``publisher``'s ``inbound`` (``data``, its header fields passed) to every
        other seat receiving on that m-line."""
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
    """All rooms' media on this node."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self._rooms: dict[str, Room] = {}
        self._retired = Counters()  # counts of closed rooms, so totals never go down

    async def answer(
        self, room_id: str, seat: str, offer_sdp: str, sources: tuple[tuple[str, int], ...] | None = None
    ) -> str:
        """Create the seat's peer connection (closing a previous one of the same seat, e.g. a restart/rejoin),
        apply the browser's offer, return the answer SDP (complete, with candidates: no trickle ICE).

        ``sources``: a receive-only observer watching these (seat, m-line) streams (see ``Peer``)."""
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Room(room_id)
        async with room.lock:
            old = room.seat(seat, None)
            if old is not None:
                await old.close()
            peer = Peer(room, seat, self.settings, sources)
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
        await asyncio.gather(*(self.close_room(room_id) for room_id in list(self._rooms)))

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
