"""Every place the relay reaches into aiortc's and aioice's internals, and nothing else.

Checked against aiortc 1.16 and aioice 0.13. What each hook relies on:

* ``RTCPeerConnection.__connect`` calls ``transceiver.sender.send(params)`` and
  ``transceiver.receiver.receive(params)`` once DTLS is up. We replace both per instance, so the sender never
  starts its encoding ``_run_rtp``/``_run_rtcp`` tasks and the receiver never registers with the RTP router or
  starts its decoder thread, jitter buffer or NACK generator; we only keep the negotiated parameters.
  Their ``stop()`` then has nothing to stop (they were never "started"), which ``pc.close()`` relies on.
* ``RTCDtlsTransport._recv_next`` awaits ``self._handle_rtp_data(data, arrival_time_ms=...)`` and
  ``self._handle_rtcp_data(data)`` with SRTP already removed; we replace both per instance, so every packet
  of the connection comes to the relay (aiortc's RtpRouter is bypassed).
* ``RTCDtlsTransport._send_rtp(data)`` protects one RTP or RTCP packet with SRTP and sends it; it raises
  ``ConnectionError`` when not connected.
* ``RTCRtpSender._ssrc`` / ``_rtx_ssrc`` are the SSRCs aiortc announced for the sender in its answer.
* ``RTCIceGatherer._connection`` is aioice's ``Connection``; ``gather_candidates()`` takes its host
  addresses from ``aioice.ice.get_host_addresses``, which leaves 127.0.0.1 out and cannot be told which
  addresses to use. We replace ``gather_candidates`` on that one connection with the same steps over our
  addresses (``_local_candidates*`` flags, ``_components``, public ``get_component_candidates``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiortc import RTCDtlsTransport, RTCIceGatherer, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters


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
    transport: RTCDtlsTransport,
    on_rtp: Callable[[bytes], Awaitable[None]],
    on_rtcp: Callable[[bytes], Awaitable[None]],
) -> None:
    """Every decrypted RTP packet and RTCP compound packet of ``transport`` goes to ``on_rtp``/``on_rtcp``."""

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        await on_rtp(data)

    setattr(transport, "_handle_rtp_data", handle_rtp)  # noqa: B010
    setattr(transport, "_handle_rtcp_data", on_rtcp)  # noqa: B010


async def send_rtp(transport: RTCDtlsTransport, data: bytes) -> bool:
    """Protect and send one RTP or RTCP packet; False when the connection is not (or no longer) up."""
    try:
        await transport._send_rtp(data)
    except ConnectionError:
        return False
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
