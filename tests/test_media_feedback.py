"""What subscribers report reaches the publisher (the worst loss, the lowest REMB), and the relay sends sender
reports for the streams it forwards; over loopback with aiortc stand-ins, time moved by the injected clock.
The same with a real Chromium publisher is tests/test_browser_feedback.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, unpack_remb_fci

from core.clock import RunningClock
from media import MediaRooms, MediaSettings
from media.feedback import CEILING, FRESH_FOR, Feedback, publisher_bitrate
from media.peer import REPORT_INTERVAL
from signaling.sit_in import OBSERVED, observer_seat
from tests.harness.media import LOOPBACK, Client, Subscriber, connect, wait_for

pytestmark = pytest.mark.both_loops

NTP_EPOCH = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


# The rule, sans I/O


def test_the_worst_loss_and_the_lowest_bitrate_count_while_fresh() -> None:
    feedback = Feedback()
    assert feedback.worst_loss(0.0) == 0 and feedback.lowest_bitrate(0.0) is None
    feedback.note_loss("phone", 26, now=10.0)
    feedback.note_loss("pc", 2, now=10.5)
    feedback.note_bitrate("phone", 300_000, now=10.0)
    feedback.note_bitrate("pc", 1_500_000, now=10.5)
    assert feedback.worst_loss(11.0) == 26
    assert feedback.lowest_bitrate(11.0) == 300_000
    # the phone went quiet: past FRESH_FOR its report no longer holds the publisher down
    assert feedback.worst_loss(10.0 + FRESH_FOR + 0.1) == 2
    assert feedback.lowest_bitrate(10.0 + FRESH_FOR + 0.1) == 1_500_000
    feedback.forget("pc")
    assert feedback.worst_loss(11.0) == 0 and feedback.lowest_bitrate(11.0) is None


def test_a_publisher_is_never_let_past_the_ceiling() -> None:
    assert publisher_bitrate([]) == CEILING
    assert publisher_bitrate([None, None]) == CEILING
    assert publisher_bitrate([5 * CEILING]) == CEILING
    assert publisher_bitrate([None, 700_000, 400_000]) == 400_000


# Through the relay


@pytest.fixture
def clock() -> RunningClock:
    return RunningClock()


@pytest.fixture
async def rooms(clock: RunningClock) -> AsyncIterator[MediaRooms]:
    media = MediaRooms(MediaSettings(host_addresses=LOOPBACK), clock=clock)
    yield media
    await media.aclose()


def rembs(client: Client, since: int = 0) -> list[int]:
    """The REMB bitrates the server sent ``client`` (after its first ``since`` RTCP packets)."""
    return [
        unpack_remb_fci(p.fci)[0]
        for p in client.rtcp[since:]
        if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP
    ]


def losses(client: Client, ssrc: int, since: int = 0) -> list[int]:
    """The loss fractions the server reported to ``client`` about its stream ``ssrc``."""
    return [
        block.fraction_lost
        for p in client.rtcp[since:]
        if isinstance(p, RtcpRrPacket)
        for block in p.reports
        if block.ssrc == ssrc
    ]


async def camera_ssrc(client: Client) -> int:
    await wait_for(lambda: bool(client.transceivers[0].sender._ssrc), what="the camera's SSRC")
    return int(client.transceivers[0].sender._ssrc)


async def test_the_weakest_subscriber_sets_the_publishers_rate_and_loss(
    rooms: MediaRooms, clock: RunningClock
) -> None:
    publisher = await connect(rooms, "r1", "host", camera=True)
    phone, pc = Subscriber(), Subscriber()
    try:
        await phone.join(rooms, "r1", "guest")
        await pc.join(rooms, "r1", "second-screen")
        await wait_for(lambda: phone.packets[0] > 20 and pc.packets[0] > 20, what="video at both subscribers")
        ssrc = await camera_ssrc(publisher)
        before = len(publisher.rtcp)
        assert pc.report(fraction_lost=3, bitrate=1_200_000)
        assert phone.report(fraction_lost=26, bitrate=300_000)  # ~10 % lost, 300 kbps
        # A lower REMB goes out at once; the loss with the next receiver report (the clock jumps there).
        await wait_for(lambda: 300_000 in rembs(publisher, before), within=2, what="a REMB of 300 kbps")
        clock.advance(2 * REPORT_INTERVAL)
        await wait_for(lambda: bool(losses(publisher, ssrc, before)), within=2, what="a receiver report")
        assert losses(publisher, ssrc, before)[-1] >= 26
        assert rembs(publisher, before)[-1] == 300_000
        counters = rooms.counters("r1")
        assert counters.bitrate_reports_received >= 2 and counters.receiver_reports_received >= 2

        # The phone leaves: the other subscriber's figures hold from the next report on.
        await rooms.leave("r1", "guest")
        since = len(publisher.rtcp)
        clock.advance(2 * REPORT_INTERVAL)
        assert pc.report(fraction_lost=3, bitrate=1_200_000)
        await wait_for(lambda: 1_200_000 in rembs(publisher, since), within=2, what="the pc's REMB")
        await wait_for(lambda: bool(losses(publisher, ssrc, since)), within=2, what="a receiver report")
        assert losses(publisher, ssrc, since)[-1] < 26

        # Nobody reports any more: past FRESH_FOR the publisher may go up to the ceiling again.
        since = len(publisher.rtcp)
        clock.advance(FRESH_FOR + 2 * REPORT_INTERVAL)
        await wait_for(lambda: CEILING in rembs(publisher, since), within=2, what="the ceiling")
    finally:
        for closing in (phone, pc, publisher):
            await closing.close()


def ntp_seconds(ntp: int) -> float:
    return (ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32 - NTP_EPOCH


async def a_sender_report_places_the_last_packet_at_now(
    viewer: Subscriber, clock: RunningClock, when: str
) -> None:
    since = len(viewer.sender_reports())
    clock.advance(2 * REPORT_INTERVAL)
    await wait_for(lambda: len(viewer.sender_reports()) > since, within=3, what=f"an SR ({when})")
    info = viewer.sender_reports()[-1].sender_info
    arrived, timestamp = time.time(), viewer.last_timestamp[0]
    assert timestamp is not None
    assert 0 < info.packet_count <= viewer.packets[0] + 5  # what we sent it (a few in flight)
    assert info.packet_count < info.octet_count < 1300 * info.packet_count  # payload octets
    # The last packet's timestamp, placed with the SR's mapping, is about now (within a few frames).
    placed = ntp_seconds(info.ntp_timestamp) + ((timestamp - info.rtp_timestamp) & 0xFFFFFFFF) / 90_000
    if placed - arrived > 2**31 / 90_000:  # the packet's timestamp is before the SR's
        placed -= 2**32 / 90_000
    assert abs(placed - arrived) < 0.3, f"{when}: the SR maps RTP time {placed - arrived:+.3f} s off"


async def test_sender_reports_map_the_relayed_timestamps_to_the_publishers_clock(
    rooms: MediaRooms, clock: RunningClock
) -> None:
    """Each SR the subscriber gets is for the SSRC it receives, counts what it was sent, and its NTP/RTP pair
    places the rewritten timestamps on the publisher's clock (aiortc stamps NTP from the wall clock, which
    this process shares), also after a rejoin moved them by an offset."""
    host = await connect(rooms, "r1", "host", camera=True)
    viewer = Subscriber()
    again: Client | None = None
    try:
        await viewer.join(rooms, "r1", "guest")
        await wait_for(lambda: viewer.packets[0] > 30, what="video")
        await a_sender_report_places_the_last_packet_at_now(viewer, clock, "first")
        again = await connect(rooms, "r1", "host", camera=True)  # new SSRC and timestamp origin
        await host.close()
        count = viewer.packets[0]
        await wait_for(lambda: viewer.packets[0] > count + 30, what="the rejoined host's video")
        await a_sender_report_places_the_last_packet_at_now(viewer, clock, "after a rejoin")
        assert rooms.counters("r1").sender_reports_sent >= 2
    finally:
        await viewer.close()
        await host.close()
        if again is not None:
            await again.close()


async def test_a_manager_sitting_in_never_slows_the_meeting(rooms: MediaRooms, clock: RunningClock) -> None:
    """An observer (同席) on a weak link gets the video, but its loss and REMB do not reach the publisher:
    nothing the manager's page does reaches the meeting."""
    publisher = await connect(rooms, "r1", "host", camera=True)
    guest, manager = Subscriber(), Subscriber(kinds=("video",) * len(OBSERVED))
    try:
        await guest.join(rooms, "r1", "guest")
        await manager.join(rooms, "r1", observer_seat("watcher"), OBSERVED)
        await wait_for(lambda: guest.packets[0] > 20 and manager.packets[0] > 20, what="video at both")
        ssrc = await camera_ssrc(publisher)
        before = len(publisher.rtcp)
        assert manager.report(fraction_lost=128, bitrate=100_000)  # half lost, 100 kbps
        assert guest.report(fraction_lost=3, bitrate=1_200_000)
        await wait_for(lambda: 1_200_000 in rembs(publisher, before), within=2, what="the guest's REMB")
        clock.advance(2 * REPORT_INTERVAL)
        await wait_for(lambda: bool(losses(publisher, ssrc, before)), within=2, what="a receiver report")
        assert 100_000 not in rembs(publisher, before)
        assert max(losses(publisher, ssrc, before)) < 128
        assert rooms.counters("r1").receiver_reports_received == 1  # the guest's only
    finally:
        for closing in (manager, guest, publisher):
            await closing.close()
