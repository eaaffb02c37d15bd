"""レコログ in real Chromium with fake cameras, through the real relay: 「録画中」 on both sides (the guest
told before its camera starts, and when it saw it kept), the host's stop and restart, a document shown and
turned and the memo typed by both while recording, every track file of the call decoding with PyAV over
(within 1 s) the time it was recorded, with frames from both ends, and the replay of that very call seeking
to chosen moments and showing the page and the memo of then."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest
from sqlalchemy import select

from core.clock import ManualClock
from recordings.models import MeetingEvent, MeetingRecord, Recording
from tests.calls import decoding, meeting
from tests.harness.live import LiveServer
from tests.harness.pdfs import text_pdf
from tests.harness.serve import Serve
from tests.test_browser_documents import upload
from tests.test_browser_memo import same_memo
from web.services import services

pytestmark = pytest.mark.browser
COUNTER = "text => document.querySelector('[data-doc-counter]')?.textContent === text"
SEEKED = "v => v.seeking && new Promise(done => v.addEventListener('seeked', done, {once: true}))"


@pytest.fixture
def clock() -> ManualClock:
    """The live server's clock, from the wall clock's now: the meeting's events (pages, memo) and the
    recording's files (wall time) meet on one time line, as on a real node. The test moves it to the wall
    clock at each step (:func:`step`), so each event's time is the step's, known exactly."""
    return ManualClock(time.time())


def step(clock: ManualClock) -> float:
    """Move the server's clock to the wall clock's now; that time (POSIX s)."""
    clock.advance(max(0.0, time.time() - clock.now))
    return clock.now


def decoded_span(path: str) -> tuple[int, float, float]:
    """Frames decoded, the first and the last frame's time (s)."""
    frames, first, last = 0, None, 0.0
    with av.open(path) as container:
        stream = container.streams[0]
        for frame in container.decode(stream):
            base = getattr(frame, "time_base", None)
            if frame.pts is None or base is None:
                continue
            at = float(frame.pts * base)
            first = at if first is None else first
            last, frames = at, frames + 1
    return frames, first or 0.0, last


async def rows(server: LiveServer, room_id: str) -> tuple[list[Recording], list[MeetingEvent]]:
    async with services(server.app).sessions() as db:
        recordings = list(await db.scalars(select(Recording).where(Recording.room_id == room_id)))
        events = list(
            await db.scalars(
                select(MeetingEvent).where(MeetingEvent.room_id == room_id).order_by(MeetingEvent.id)
            )
        )
    return recordings, events


def test_a_recorded_call_leaves_a_decodable_file_per_track_and_replays_in_sync(
    server: LiveServer, new_context: Callable[..., Any], clock: ManualClock, tmp_path: Path
) -> None:
    host, guest = meeting(new_context, server, recording=True)
    room_id = host.url.rsplit("/", 1)[1]
    for page in (host, guest):  # the call's first media started it
        page.locator("#recording-badge[data-recording='1']").wait_for()
        assert page.locator("#recording-badge").inner_text().endswith("録画中")
    started = time.monotonic()
    slides = upload(host, "会社案内.pdf", text_pdf(3))
    decoding(host)
    decoding(guest)

    # While recording: the host types a line, shows a document and turns two pages; the guest types a line
    # between the turns. Each step's time is the server's clock of its events.
    step(clock)
    host.locator("#memo-text").click()
    host.locator("#memo-text").press_sequentially("ご提案の件", delay=10)
    same_memo(host, guest)
    shown = step(clock)
    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{slides}"]').click()
    guest.wait_for_function(COUNTER, arg="1 / 3ページ")
    page_2 = step(clock)
    host.keyboard.press("ArrowRight")
    guest.wait_for_function(COUNTER, arg="2 / 3ページ")
    guest_typed = step(clock) + 1.0
    clock.advance(1.0)
    if not guest.locator("#memo-text").is_visible():  # a wide screen's guest may have it open already
        guest.get_by_role("button", name="共有メモ", exact=True).click()
    guest.locator("#memo-text").click()
    guest.keyboard.press("Control+End")
    guest.locator("#memo-text").press_sequentially("\n予算は100万円", delay=10)
    assert same_memo(host, guest) == "ご提案の件\n予算は100万円"
    page_3 = step(clock) + 1.0
    clock.advance(1.0)
    box = host.locator("[data-doc-slide]").bounding_box()  # the focus is in the memo: a click instead
    host.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)  # the right part: next
    guest.wait_for_function(COUNTER, arg="3 / 3ページ")
    decoding(host, more=30, within=10)
    step(clock)

    # The host stops the recording, then restarts it: a second set of files.
    host.get_by_role("button", name="録画を停止").click()
    for page in (host, guest):
        page.locator("#recording-badge[data-recording='']").wait_for()
    first_stop = time.monotonic()
    first_stop_wall = datetime.now(UTC).replace(tzinfo=None)
    host.get_by_role("button", name="録画を再開").click()
    for page in (host, guest):
        page.locator("#recording-badge[data-recording='1']").wait_for()
    restarted = time.monotonic()
    decoding(host, more=30, within=15)  # a second or more of video (a loaded box's fake camera runs slow)
    decoding(guest, more=20, within=10)
    ending = step(clock)
    host.get_by_role("button", name="終了", exact=True).click()
    guest.get_by_text("商談は終了しました。").wait_for()
    ended = time.monotonic()
    server.call(services(server.app).recorder.settle())

    recordings, events = server.call(rows(server, room_id))
    kinds = [event.kind for event in events]
    assert kinds.count("recording_started") == 2 and kinds.count("recording_stopped") == 2
    seen = [event for event in events if event.kind == "recording_seen"]
    assert seen and "Chrome" in seen[0].detail  # when the guest saw it, and on what
    guest_camera = [event for event in events if event.kind == "camera" and event.detail == "guest on"]
    assert guest_camera and seen[0].id < guest_camera[0].id  # told before its camera started

    # One set of files per start: those that began before the first stop, and those after it (a file's
    # origin is its first frame, in wall time; on a quiet box the restart follows the start within seconds).
    def began(recording: Recording) -> datetime:
        return recording.origin_at.replace(tzinfo=None)

    sets: list[list[Recording]] = [
        [r for r in recordings if began(r) < first_stop_wall],
        [r for r in recordings if began(r) >= first_stop_wall],
    ]
    spans = [first_stop - started, ended - restarted]
    for files, real in zip(sets, spans, strict=True):
        assert {(f.seat, f.track) for f in files} >= {("host", "camera"), ("guest", "camera")}
        begins = min(f.origin_at for f in files)
        for recording in files:  # every track's file
            assert recording.state == "done", recording.reason
            path = tmp_path / recording.key.replace("/", "_")
            path.write_bytes(server.call(services(server.app).storage.get(recording.key)))
            frames, first, last = decoded_span(str(path))
            assert frames > 10 and first == 0.0
            # From the start of the recording (a camera may start a moment after the first media) to its
            # end (frames from both ends), the end within 1 s of when the recording stopped.
            late = (recording.origin_at - begins).total_seconds()
            assert late < 3.0, (recording.seat, late)
            assert abs(late + last - real) < 1.0, (recording.seat, recording.track, late, last, real)
            assert recording.end_ms == pytest.approx(last * 1000, abs=50)

    # The replay of this call: seek to chosen moments; the page and the memo of then, the cameras there.
    async def record_id() -> int:
        async with services(server.app).sessions() as db:
            found = await db.scalar(select(MeetingRecord.id).where(MeetingRecord.room_id == room_id))
        assert found is not None
        return int(found)

    host.goto(f"{server.url}/records/{server.call(record_id())}")
    host.get_by_role("link", name="録画を再生").click()
    host.locator("#replay[data-ready='1']").wait_for()

    def seek(at: float) -> None:
        host.evaluate("at => window.tsunaguReplay.seekTo(at)", int(at * 1000))

    cameras = [r for r in sets[0] if r.track == "camera"]
    shown_cameras: set[int] = set()
    for moment, page, memo in (
        ((page_2 + guest_typed) / 2, 2, "ご提案の件"),  # page 2 shown, only the host's line yet
        (page_3 + 0.5, 3, "ご提案の件\n予算は100万円"),  # page 3, both lines
    ):
        seek(moment)
        assert host.locator("#replay-page").get_attribute("src") == f"/documents/{slides}/pages/{page}.jpg"
        assert host.locator("#replay-memo").text_content() == memo
        for recording in cameras:  # each camera shown where its file covers the moment, at that point of it
            video = host.locator(f"video.replay-camera[src$='/recordings/{recording.id}']")
            local = moment - recording.origin_at.replace(tzinfo=UTC).timestamp()
            # As the page decides (replay.js): a camera stays up to 0.1 s past its file's last frame.
            covered = 0 <= local <= recording.end_ms / 1000 + 0.1
            assert video.is_visible() == covered, (recording.seat, local, recording.end_ms)
            if covered:  # a camera that started late (a loaded box: up to 3 s) is hidden before its file
                video.evaluate(SEEKED)
                assert abs(float(video.evaluate("v => v.currentTime")) - local) < 0.2, (recording.seat, local)
                shown_cameras.add(recording.id)
    assert shown_cameras == {r.id for r in cameras}  # page 3 comes seconds after every camera's first frame
    # Near the end, in the second set of files: the first set's cameras are hidden, the second's shown.
    seek(ending - 0.5)
    for files, visible in zip(sets, (False, True), strict=True):
        for recording in files:
            if recording.track == "camera":
                video = host.locator(f"video.replay-camera[src$='/recordings/{recording.id}']")
                assert video.is_visible() == visible, (recording.seat, visible)
    # Clicking a memo line seeks to when it was written; the timeline's events seek too.
    start = float(host.evaluate("window.tsunaguReplay.data.start"))

    def position() -> float:
        return start + int(host.locator("#replay").get_attribute("data-position") or 0)

    host.locator("#replay-lines button", has_text="予算は100万円").click()
    assert abs(position() - guest_typed * 1000) <= 1
    assert host.locator("#replay-memo").text_content() == "ご提案の件\n予算は100万円"
    host.locator("#replay-events button", has_text="会社案内.pdf").click()  # shown
    assert abs(position() - shown * 1000) <= 1
    # The files are fetched with Range requests (seekable without loading them whole).
    ranged = host.request.get(
        f"{server.url}/records/{server.call(record_id())}/recordings/{cameras[0].id}",
        headers={"Range": "bytes=0-99"},
    )
    assert ranged.status == 206 and len(ranged.body()) == 100


def test_a_server_killed_while_recording_leaves_files_the_next_start_recovers(
    served: Serve, new_context: Callable[..., Any]
) -> None:
    host, guest = meeting(new_context, served, recording=True)
    room_id = host.url.rsplit("/", 1)[1]
    for page in (host, guest):
        page.locator("#recording-badge[data-recording='1']").wait_for()
    decoding(host, more=150, within=15)  # some seconds of video both ways
    decoding(guest, more=20, within=10)
    killed = time.time()
    served.kill()  # SIGKILL: nothing is closed, nothing flushed beyond what the muxer already did
    for page in (host, guest):
        page.context.close()

    spool = served.root / "var" / "recordings-spool"
    left = sorted(spool.glob(f"*/{room_id}/*/*.webm"))
    assert {path.name.split("-", 1)[1] for path in left} >= {"host-camera.webm", "guest-camera.webm"}
    for path in left:
        if not path.name.endswith("camera.webm"):
            continue
        frames, _, last = decoded_span(str(path))  # plays as it was left, with no duration or cues
        origin = int(path.name.split("-", 1)[0]) / 1000
        assert frames > 10 and killed - (origin + last) < 5.0, (path.name, killed - (origin + last))

    served.start()  # the next start finishes them: remuxed, stored, marked recovered
    deadline = time.monotonic() + 30
    while len(served.events("recording.recovered")) < len(left):
        assert time.monotonic() < deadline, "the recordings were not recovered within 30 s"
        time.sleep(0.2)
    with sqlite3.connect(served.root / "var" / "tsunagu.db") as db:
        stored = db.execute("SELECT key, state, seat, track FROM recordings WHERE room_id = ?", (room_id,))
        found = stored.fetchall()
    assert {state for _, state, _, _ in found} == {"recovered"} and len(found) == len(left)
    for key, _, _, track in found:
        path = served.root / "var" / key
        with av.open(str(path)) as container:
            assert container.duration is not None  # finished: a duration and cues now
        if track == "camera":
            assert decoded_span(str(path))[0] > 10
    assert not list(spool.glob(f"*/{room_id}/*/*.webm"))
