"""Feedback for phones on weak links, with a real Chromium publisher through the real relay: a subscriber
that reports 10 % loss and 300 kbps makes the publishing Chromium lower its send bitrate within 10 s; the
relay's sender reports reach the subscribing Chromium (remote-outbound-rtp) and its receiver reports give the
publisher an RTT.

The weak subscriber is an aiortc stand-in (``tests.harness.media.Subscriber``) seated beside the guest on the
server's own relay; the guest's Chromium, which reports its own good link, stays subscribed, so the test also
shows that the weaker of two subscribers sets the publisher's rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.calls import decoding, meeting
from tests.harness.live import LiveServer
from tests.harness.media import Subscriber
from web.services import services

pytestmark = pytest.mark.browser

DENY_CAMERA = """
  navigator.mediaDevices.getUserMedia = () =>
    Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
"""

CAMERA_STATS = """async () => {
  const stats = await window.tsunaguMedia.link.transceivers[0].sender.getStats();
  const out = {};
  stats.forEach((report) => {
    if (report.type === "outbound-rtp") Object.assign(out, {
      targetBitrate: report.targetBitrate ?? 0, bytesSent: report.bytesSent ?? 0, at: report.timestamp });
    if (report.type === "remote-inbound-rtp") Object.assign(out, {
      rtt: report.roundTripTime ?? null, fractionLost: report.fractionLost ?? null });
  });
  return out;
}"""

RECEIVED_STATS = """async () => {
  const stats = await window.tsunaguMedia.link.transceivers[0].receiver.getStats();
  let remote = null;
  stats.forEach((report) => {
    if (report.type === "remote-outbound-rtp") remote = {
      packetsSent: report.packetsSent ?? 0, remoteTimestamp: report.remoteTimestamp ?? 0,
      reportsSent: report.reportsSent ?? 0 };
  });
  return remote;
}"""

WEAK_LOSS = 26  # of 256: about 10 %
WEAK_BITRATE = 300_000


def camera_stats(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(CAMERA_STATS))


def wait_for_stats(page: Any, script: str, test: Callable[[Any], bool], within: float, what: str) -> Any:
    """Poll ``script`` on ``page`` until ``test`` holds (bounded); its last value."""
    deadline = time.monotonic() + within
    while True:
        value = page.evaluate(script)
        if value is not None and test(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s; last {value}")
        page.wait_for_timeout(200)


def test_a_weak_subscriber_lowers_the_publishers_bitrate(
    server: LiveServer, new_context: Callable[..., Any]
) -> None:
    host, guest = meeting(new_context, server, guest_script=DENY_CAMERA)
    decoding(guest, within=10)  # the host's camera reaches the guest's Chromium
    room_id = guest.url.rsplit("/", 1)[1]

    # Sender reports from the relay: the guest's Chromium sees the remote sender's counts and clock.
    remote = wait_for_stats(
        guest,
        RECEIVED_STATS,
        lambda r: r["packetsSent"] > 0,
        within=10,
        what="remote-outbound-rtp at the guest",
    )
    assert abs(remote["remoteTimestamp"] - time.time() * 1000) < 5000  # the host's NTP clock, carried over
    # Receiver reports from the relay echo the host's sender reports: the host's Chromium has an RTT.
    wait_for_stats(
        host, CAMERA_STATS, lambda s: s.get("rtt") is not None, within=10, what="an RTT at the host"
    )

    # The host ramps up on a good link (the guest's Chromium reports no loss and a high estimate) towards the
    # page's cap for a normal camera (600 kbps).
    start = wait_for_stats(
        host, CAMERA_STATS, lambda s: s["targetBitrate"] >= 500_000, within=30, what="the host ramps up"
    )

    media = services(server.app).media
    weak = Subscriber()
    reporting: list[asyncio.Task[None]] = []

    async def join() -> None:
        await weak.join(media, room_id, "weak-phone")

        async def report() -> None:
            while True:  # as a browser does, about every second (more often: the test need not wait)
                weak.report(WEAK_LOSS, WEAK_BITRATE)
                await asyncio.sleep(0.5)

        reporting.append(asyncio.ensure_future(report()))

    async def leave() -> None:
        for task in reporting:
            task.cancel()
        await media.leave(room_id, "weak-phone")
        await weak.close()

    server.call(join())
    try:
        wait_for_stats(
            host,
            CAMERA_STATS,
            lambda s: s["targetBitrate"] <= WEAK_BITRATE * 1.1,
            within=10,
            what=f"the host lowers its bitrate from {start['targetBitrate']}",
        )
        assert weak.packets[0] > 0  # the weak phone did receive the camera
        # the host is told the weak phone's loss (its own leg to the server loses nothing)
        wait_for_stats(
            host,
            CAMERA_STATS,
            lambda s: (s.get("fractionLost") or 0) >= 0.09,
            within=5,
            what="the loss reported",
        )
        decoding(guest, within=5)  # the guest's picture goes on at the lower rate
    finally:
        server.call(leave())
