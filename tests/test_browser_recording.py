"""レコログ in real Chromium with fake cameras, through the real relay: 「録画中」 on both sides (the guest
told before its camera starts, and when it saw it kept), the host's stop and restart, and every track file
of the call decoding with PyAV over (within 1 s) the time it was recorded, with frames from both ends."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from sqlalchemy import select

from recordings.models import MeetingEvent, Recording
from tests.calls import decoding, meeting
from tests.harness.live import LiveServer
from tests.harness.serve import Serve
from tests.helpers import PASSWORD
from web.services import services

pytestmark = pytest.mark.browser


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


def test_a_recorded_call_leaves_a_decodable_file_per_track(
    server: LiveServer, new_context: Callable[..., Any], tmp_path: Path
) -> None:
    host, guest = meeting(new_context, server, recording=True)
    room_id = host.url.rsplit("/", 1)[1]
    for page in (host, guest):  # the call's first media started it
        page.locator("#recording-badge[data-recording='1']").wait_for()
        assert page.locator("#recording-badge").inner_text().endswith("録画中")
    started = time.monotonic()
    decoding(host)
    decoding(guest)
    # The host stops the recording, then restarts it: a second set of files.
    host.get_by_role("button", name="録画を停止").click()
    for page in (host, guest):
        page.locator("#recording-badge[data-recording='']").wait_for()
    first_stop = time.monotonic()
    host.get_by_role("button", name="録画を再開").click()
    for page in (host, guest):
        page.locator("#recording-badge[data-recording='1']").wait_for()
    restarted = time.monotonic()
    decoding(host, more=60, within=10)
    decoding(guest, more=20, within=10)
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

    # One set of files per start, seconds apart (a file's origin is its first frame).
    recordings.sort(key=lambda r: r.origin_at)
    sets: list[list[Recording]] = [[recordings[0]]]
    for recording in recordings[1:]:
        if (recording.origin_at - sets[-1][0].origin_at).total_seconds() > 2:
            sets.append([])
        sets[-1].append(recording)
    assert len(sets) == 2
    spans = [first_stop - started, ended - restarted]
    for files, real in zip(sets, spans, strict=True):
        assert {(f.seat, f.track) for f in files} >= {("host", "camera"), ("guest", "camera")}
        begins = min(f.origin_at for f in files)
        for recording in files:
            assert recording.state == "done", recording.reason
            if recording.track != "camera":
                continue
            path = tmp_path / recording.key.replace("/", "_")
            path.write_bytes(server.call(services(server.app).storage.get(recording.key)))
            frames, first, last = decoded_span(str(path))
            assert frames > 10 and first == 0.0
            # From the start of the recording (a camera may start a moment after the first media) to its
            # end (frames from both ends), the end within 1 s of when the recording stopped.
            late = (recording.origin_at - begins).total_seconds()
            assert late < 3.0, (recording.seat, late)
            assert abs(late + last - real) < 1.0, (recording.seat, late, last, real)
            assert recording.end_ms == pytest.approx(last * 1000, abs=50)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    serve = Serve(tmp_path)
    serve.run("db", "upgrade")
    serve.run("org", "add", "acme", "--name", "ACME")
    serve.run(
        "user",
        "add",
        "--org",
        "acme",
        "--role",
        "host",
        "--email",
        "host@acme.example",
        "--password",
        PASSWORD,
    )
    serve.start()
    yield serve
    if serve.process is not None and serve.process.poll() is None:
        serve.stop()


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
