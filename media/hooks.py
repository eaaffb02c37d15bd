"""Every place the relay reaches into aiortc's and aioice's internals, and nothing else.

Checked against aiortc 1.16 and aioice 0.13. What each hook relies on:

* ``take_over_transceiver``: ``RTCPeerConnection.__connect`` calls ``transceiver.sender.send(params)`` and
  ``transceiver.receiver.receive(params)`` once DTLS is up. We replace both per instance, so the sender never
  starts its encoding ``_run_rtp``/``_run_rtcp`` tasks and the receiver never registers with the RTP router or
  starts its decoder thread, jitter buffer or NACK generator; we only keep the negotiated parameters.
  Their ``stop()`` then has nothing to stop (they were never "started"), which ``pc.close()`` relies on.
* ``take_over_transport``: ``RTCDtlsTransport._recv_next`` awaits ``self._handle_rtp_data(data,
  arrival_time_ms=...)`` and ``self._handle_rtcp_data(data)`` with SRTP already removed; we replace both per
  instance, so every packet that still takes aiortc's path comes to the relay (its RtpRouter is bypassed).
* ``receive_now`` (the fast path in): aioice's ``StunProtocol.datagram_received(data, addr)`` is what the
  event loop calls per datagram of a gathered socket (``Connection._protocols``); it queues non-STUN data
  for ``Connection.recvfrom``, which ``_recv_next`` awaits. We wrap it per protocol instance: SRTP/SRTCP
  (RFC 7983: first byte 128–191; RTCP by aiortc's ``is_rtcp`` rule, second byte 192–208) is unprotected
  right there with ``RTCDtlsTransport._rx_srtp`` (a ``pylibsrtp.Session``, set once DTLS is up, the
  receive direction's keys) while ``_state`` is ``State.CONNECTED``; everything else (STUN, DTLS) goes on to
  aioice and aiortc unchanged. How many datagrams one readiness event brings depends on the loop:

  - uvloop (what ``tsunagu serve`` runs, see ``web.serving``): libuv's ``uv__udp_recvmsg`` already reads up to
    32 datagrams per readiness event and calls ``datagram_received`` for each, so the wrapper is all it
    takes. Its ``UDPTransport`` has no socket of its own to read from (``get_extra_info("socket")`` is a
    ``PseudoSocket`` whose ``recvfrom`` raises), and none is needed.
  - asyncio's selector loop reads one datagram per readiness event; after it, we read on from the same
    socket (``_SelectorDatagramTransport._sock``, non-blocking) until it would block, up to ``DRAIN``.
* ``send_now`` (the fast path out): ``RTCDtlsTransport._tx_srtp`` is the send direction's SRTP session and
  ``_send_rtp`` is protect + ``RTCIceTransport._connection.send``, which sends on
  ``Connection._nominated[1]`` (a ``CandidatePair``: ``.protocol.transport`` is the asyncio datagram
  transport, ``.remote_addr`` the peer's address). We do the same without awaiting; the selected pair is
  looked up per packet (a dict lookup), so a pair nominated later, or dropped on consent failure/close
  (``Connection.close`` clears ``_nominated``), is taken into account at once.
* ``sender_ssrcs``: ``RTCRtpSender._ssrc`` / ``_rtx_ssrc`` are the SSRCs aiortc announced in its answer.
* ``gather_on``: ``RTCIceGatherer._connection`` is aioice's ``Connection``; ``gather_candidates()`` takes its
  host addresses from ``aioice.ice.get_host_addresses``, which leaves 127.0.0.1 out and cannot be told which
  addresses to use. We replace ``gather_candidates`` on that one connection with the same steps over our
  addresses (``_local_candidates*`` flags, ``_components``, public ``get_component_candidates``).
* ``wait_for_checks``: ``Connection.connect()`` pairs the remote candidates it has, then replays the checks
  that arrived before it (``_early_checks``, filled by ``request_received`` until ``_early_checks_done``;
  ``check_incoming`` learns a peer-reflexive candidate from one), and fails at once when the check list is
  still empty. Remote candidates that could not be resolved (mDNS ``.local`` names) never reach
  ``_remote_candidates``. We wrap ``connect`` per instance to wait, bounded, for a first authenticated
  incoming check (observed by wrapping ``request_received``) when there is nothing to pair yet. And at
  end-of-candidates ``_prune_components`` drops every component without a remote candidate, after which
  ``gather_candidates`` gathers nothing for it; we skip that when no remote candidate is known at all (with
  rtcp-mux there is one component, which the checks will bring a peer-reflexive candidate for).
  Install it before ``setRemoteDescription`` (which adds the remote candidates and end-of-candidates).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice import Connection
from aiortc import RTCDtlsTransport, RTCIceGatherer, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters

_CONNECTED = State.CONNECTED
DRAIN = 32  # datagrams read per readiness event beyond the one asyncio's selector loop read (libuv's figure)
RECV_SIZE = 65536
CHECKS_WAIT = 10.0  # seconds connect() waits for a first incoming check when no remote candidate is usable


def take_over_transceiver(
    transceiver: RTCRtpTransceiver,
    on_send: Callable[[RTCRtpSendParameters], None],
    on_receive: Callable[[RTCRtpReceiveParameters], None],
) -> None:
    """Keep aiortc's sender and receiver of ``transceiver`` idle; hand their negotiated parameters over."""

    async def send(parameters: RTCRtpSendParameters) -> None:
        on_send(parameters)

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        on_receive(parameters)

    setattr(transceiver.sender, "send", send)  # noqa: B010 -- an instance attribute shadows the method
    setattr(transceiver.receiver, "receive", receive)  # noqa: B010


def take_over_transport(
    transport: RTCDtlsTransport, on_rtp: Callable[[bytes], None], on_rtcp: Callable[[bytes], None]
) -> None:
    """Every decrypted RTP packet and RTCP compound packet of ``transport`` that takes aiortc's receive path
    goes to ``on_rtp``/``on_rtcp`` (see ``receive_now`` for the path that skips aiortc)."""

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data)

    async def handle_rtcp(data: bytes) -> None:
        on_rtcp(data)

    setattr(transport, "_handle_rtp_data", handle_rtp)  # noqa: B010
    setattr(transport, "_handle_rtcp_data", handle_rtcp)  # noqa: B010


def receive_now(
    transport: RTCDtlsTransport,
    on_rtp: Callable[[bytes], None],
    on_rtcp: Callable[[bytes], None],
    on_error: Callable[[], None],
) -> int:
    """Unprotect and hand over SRTP/SRTCP datagrams of ``transport`` as the event loop delivers them: no
    queue, no task, no await per packet. ``on_error`` counts packets that fail to unprotect (dropped).
    Call after gathering (the sockets must exist); returns how many sockets got the fast path."""
    connection = transport.transport._connection
    protocols = list(connection._protocols)
    for protocol in protocols:
        aioice_received = protocol.datagram_received

        def handle(data: bytes, addr: Any, aioice_received: Any = aioice_received) -> None:
            srtp = transport._rx_srtp
            if 127 < data[0] < 192 and srtp is not None and transport._state is _CONNECTED and len(data) > 7:
                try:
                    if 191 < data[1] < 209:
                        plain = srtp.unprotect_rtcp(data)
                    else:
                        on_rtp(srtp.unprotect(data))
                        return
                except pylibsrtp.Error:  # forged, replayed or from an old session: drop
                    on_error()
                    return
                on_rtcp(plain)
                return
            aioice_received(data, addr)

        udp = protocol.transport
        sock = getattr(udp, "_sock", None)  # asyncio's selector transport; uvloop's has none
        if sock is None:
            setattr(protocol, "datagram_received", handle)  # noqa: B010 -- libuv drains the socket itself
            continue

        def datagram_received(
            data: bytes, addr: Any, handle: Any = handle, udp: Any = udp, sock: Any = sock
        ) -> None:
            handle(data, addr)
            # Read on while datagrams wait: a loop turn per datagram costs more than forwarding it.
            for _ in range(DRAIN):
                if udp.is_closing():
                    return
                try:
                    data, addr = sock.recvfrom(RECV_SIZE)
                except OSError:  # nothing more waiting (or an error asyncio reports on its next read)
                    return
                handle(data, addr)

        setattr(protocol, "datagram_received", datagram_received)  # noqa: B010
    return len(protocols)


def send_now(transport: RTCDtlsTransport, data: bytes) -> bool:
    """Protect and send one RTP or RTCP packet at once; False when the connection is not (or no longer) up."""
    if transport._state is not _CONNECTED:
        return False
    pair = transport.transport._connection._nominated.get(1)
    if pair is None:
        return False
    srtp = transport._tx_srtp
    pair.protocol.transport.sendto(
        srtp.protect_rtcp(data) if 191 < data[1] < 209 else srtp.protect(data), pair.remote_addr
    )
    return True


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The media and RTX SSRCs announced for ``sender``."""
    return sender._ssrc, sender._rtx_ssrc


def gather_on(gatherer: RTCIceGatherer, addresses: tuple[str, ...]) -> None:
    """Make ``gatherer`` offer host candidates on exactly ``addresses`` (127.0.0.1 included when asked)."""
    connection = gatherer._connection

    async def gather_candidates() -> None:
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        for component in sorted(connection._components):
            connection._local_candidates += await connection.get_component_candidates(
                component=component, addresses=list(addresses)
            )
        connection._local_candidates_end = True

    setattr(connection, "gather_candidates", gather_candidates)  # noqa: B010


def wait_for_checks(gatherer: RTCIceGatherer, within: float = CHECKS_WAIT) -> None:
    """Let ``gatherer``'s ICE connection learn the browser's address from its checks when the offer has no
    candidate we can use (only mDNS names, as Chrome offers without camera/microphone permission):
    ``connect()`` waits up to ``within`` seconds for a first incoming check instead of failing at once."""
    connection: Connection = gatherer._connection
    arrived = asyncio.Event()
    aioice_request_received = connection.request_received
    aioice_connect = connection.connect
    aioice_prune_components = connection._prune_components

    def request_received(message: Any, addr: Any, protocol: Any) -> None:
        aioice_request_received(message, addr, protocol)
        if connection._early_checks:  # authenticated and kept for connect()
            arrived.set()

    async def connect() -> None:
        if not connection._remote_candidates and not connection._early_checks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    # Short waits so that a close() meanwhile ends the wait soon.
                    while not (arrived.is_set() or connection._closing or connection._remote_candidates):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(arrived.wait(), 0.25)
        await aioice_connect()

    def prune_components() -> None:
        if connection._remote_candidates:  # else the checks will bring one (a peer-reflexive candidate)
            aioice_prune_components()

    setattr(connection, "request_received", request_received)  # noqa: B010
    setattr(connection, "connect", connect)  # noqa: B010
    setattr(connection, "_prune_components", prune_components)  # noqa: B010
