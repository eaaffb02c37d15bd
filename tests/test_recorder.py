"""The recorder (recordings/recorder.py, writer.py, webm.py) fed real VP8 and Opus RTP packets: WebM files
that decode with PyAV, a keyframe first, gaps kept as gaps, a disk that cannot keep up or cannot be
written, or a writer process that dies, marking the recording damaged without blocking the caller (and
only that room's), and a killed writer's files recovered on the next start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from core.clock import ManualClock
from recordings.models import Recording
from recordings.pool import WriterProcess, Writers
from recordings.recorder import DISK_FULL, TOO_SLOW, WRITER_GONE, Recorder, RoomRecording, _unlocked
from store.models import Role as UserRole
from tests.helpers import open_room, seed_org
from tests.rtp_streams import AUDIO_PT, VIDEO_PT, RtpStream, opus_frames, vp8_frames
from web.services import services

ROOT = Path(__file__).resolve().parents[1]
HEADER = 12  # aiortc serializes these packets without extensions


@pytest.fixture
async def writer() -> AsyncIterator[WriterProcess]:
    """The node's one writer process, as the recorder starts it."""
    process = WriterProcess(asyncio.get_running_loop())
    yield process
    await process.aclose()


def writer_processes() -> list[int]:
    """This process's children that are recording writers."""
    pids = {int(pid) for f in Path("/proc/self/task").glob("*/children") for pid in f.read_text().split()}
    found = []
    for pid in sorted(pids):
        try:
            if b"recordings.writer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def decoded(path: Path) -> tuple[int, float, float]:
    """Frames decoded, the first and the last frame's time (s)."""
    frames, first, last = 0, None, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams[0]):
            base = getattr(frame, "time_base", None)
            if frame.pts is None or base is None:
                continue
            at = float(frame.pts * base)
            first = at if first is None else first
            last = at
            frames += 1
    return frames, first or 0.0, last


async def test_tracks_are_written_without_transcoding_and_gaps_stay_gaps(
    tmp_path: Path, writer: WriterProcess
) -> None:
    clock = ManualClock(100.0)
    failures: list[str] = []
    recording = RoomRecording(tmp_path / "r", failures.append, writer, clock=clock)
    video = RtpStream(ssrc=1, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    frames = vp8_frames(60, 320, 240)
    # Packets before the first keyframe (a recording joining a stream mid-way) are skipped: the file
    # starts decodable. The sink says it waits for a keyframe, so the relay asks for one.
    asked = [recording.packet("guest", 0, "video", p, HEADER, 0.0) for p in video.packets(frames[5])]
    assert asked == [True] * len(asked)
    for index in range(30):  # one second of video, a keyframe first
        for data in video.packets(frames[index]):
            recording.packet("guest", 0, "video", data, HEADER, 0.0)
        clock.advance(1 / 30)
    await recording.synced()  # the writer has its keyframe: the relay is no longer asked for one
    assert recording.waiting == set()
    # The camera is off for 3 s; it comes back as a new stream (new SSRC, new timestamps).
    clock.advance(3.0)
    again = RtpStream(ssrc=2, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    again.timestamp = 999_999
    for index in range(30):
        for data in again.packets(frames[index]):
            recording.packet("guest", 0, "video", data, HEADER, 0.0)
        clock.advance(1 / 30)
    audio = RtpStream(ssrc=3, payload_type=AUDIO_PT, clock_rate=48000, frame_ticks=960)
    for payload in opus_frames(50):  # 1 s of browser audio
        for data in audio.packets([payload]):
            assert recording.packet("host", 2, "audio", data, HEADER, 0.0) is False
    finished = await recording.stop()
    assert failures == [] and finished.damaged == ""
    tracks = {(seat, track): result for seat, track, result in finished.tracks}
    assert set(tracks) == {("guest", "camera"), ("host", "audio")}
    camera = tracks["guest", "camera"]
    frames_read, first, last = decoded(camera.path)
    assert frames_read == 60  # every frame of both streams, none of the ones before the keyframe
    # The second stream starts after the 3 s pause: ~1 s + 3 s + 1 s end to end, not 2 s.
    assert first == pytest.approx(0.0, abs=0.05)
    assert last == pytest.approx(4 + 29 / 30, abs=0.1)
    with av.open(str(camera.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp8" and (stream.width, stream.height) == (320, 240)
        assert container.duration is not None  # a finished file: duration and cues written
    # The audio began when it arrived, 5 s into the recording: its file starts there (its name says when).
    sound = tracks["host", "audio"]
    audio_frames, audio_first, audio_last = decoded(sound.path)
    assert audio_frames == 50 and audio_last == pytest.approx(0.98, abs=0.05)
    assert audio_first == pytest.approx(0.0, abs=0.01)  # Opus's pre-skip: the decoder's first frame
    assert sound.start_ms == pytest.approx(5000, abs=50) and camera.start_ms < 50  # its first keyframe
    assert sound.path.name == f"{recording._origin_ms + sound.start_ms}-host-audio.webm"


async def test_a_disk_that_cannot_keep_up_marks_the_recording_damaged_without_waiting(
    tmp_path: Path, writer: WriterProcess
) -> None:
    failures: list[str] = []
    recording = RoomRecording(tmp_path / "r", failures.append, writer, queue_packets=8)
    video = RtpStream(ssrc=1, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    frames = vp8_frames(10, 160, 120)
    # The loop gets no turn while the packets pour in: nothing reaches the writer's pipe, the queue fills.
    for _ in range(50):
        for data in video.packets(frames[0]):
            recording.packet("guest", 0, "video", data, HEADER, 0.0)
    assert failures == [TOO_SLOW] and recording.damaged == TOO_SLOW
    assert recording.packet("guest", 0, "video", b"\x80" * 20, HEADER, 0.0) is False  # dropped from now on
    finished = await recording.stop()
    assert finished.damaged == TOO_SLOW
    assert finished.tracks and decoded(finished.tracks[0][2].path)[0] >= 1  # what was written is kept


async def test_one_writer_process_serves_every_recording_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    writers = Writers()
    loop = asyncio.get_running_loop()
    failures: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    first = writers.current(loop)
    recordings = {name: RoomRecording(tmp_path / name, failures[name].append, first) for name in "ab"}
    video = RtpStream(ssrc=1, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    frames = [data for payloads in vp8_frames(5, 160, 120) for data in video.packets(payloads)]
    for recording in recordings.values():
        for data in frames:
            recording.packet("guest", 0, "video", data, HEADER, 0.0)
    await asyncio.gather(*(recording.synced() for recording in recordings.values()))
    assert writer_processes() == [first.pid]  # one process for both rooms
    os.kill(first.pid, signal.SIGKILL)  # mid-recording (a crash in the muxer, the OOM killer)
    broken = await asyncio.gather(*(recording.stop() for recording in recordings.values()))
    # Every recording on it is damaged, with a reason that says so; what it wrote stays for recovery.
    assert [finished.damaged for finished in broken] == [WRITER_GONE, WRITER_GONE]
    assert failures["a"] == failures["b"] == [WRITER_GONE]
    assert recordings["a"].packet("guest", 0, "video", frames[0], HEADER, 0.0) is False  # dropped from now on
    assert list((tmp_path / "a").glob("*.webm")) and list((tmp_path / "b").glob("*.webm"))
    # The next recording gets a new writer process, and it writes.
    second = writers.current(loop)
    assert second.pid != first.pid and second.alive
    fresh = RoomRecording(tmp_path / "c", failures["c"].append, second)
    for data in frames:
        fresh.packet("guest", 0, "video", data, HEADER, 0.0)
    fine = await fresh.stop()
    assert fine.damaged == "" and failures["c"] == [] and decoded(fine.tracks[0][2].path)[0] == 5
    await writers.aclose()
    assert second.process.returncode == 0


async def test_an_unwritable_spool_refuses_to_start(tmp_path: Path, writer: WriterProcess) -> None:
    spool = tmp_path / "spool"
    spool.write_text("a file where the spool should be")
    with pytest.raises(OSError):
        RoomRecording(spool / "r", lambda _: None, writer)


async def test_a_full_disk_stops_only_that_recording_with_the_reason(
    tmp_path: Path, writer: WriterProcess
) -> None:
    failures: list[str] = []
    clock = ManualClock(0.0)  # the first frame at the origin: the file's name is known
    recording = RoomRecording(tmp_path / "r", failures.append, writer, clock=clock)
    neighbour = RoomRecording(tmp_path / "n", failures.append, writer, clock=clock)  # same writer process
    # The camera's file is /dev/full: every write fails with ENOSPC, as on a full disk.
    (tmp_path / "r" / f"{recording._origin_ms}-guest-camera.webm").symlink_to("/dev/full")
    video = RtpStream(ssrc=1, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    for payloads in vp8_frames(5, 160, 120):
        for data in video.packets(payloads):
            recording.packet("guest", 0, "video", data, HEADER, 0.0)
            neighbour.packet("guest", 0, "video", data, HEADER, 0.0)
    finished = await recording.stop()
    assert finished.damaged == DISK_FULL
    assert failures == [DISK_FULL]  # told once, on the loop
    fine = await neighbour.stop()  # the other recording on the same writer is untouched
    assert fine.damaged == "" and decoded(fine.tracks[0][2].path)[0] == 5


WRITER = """
import asyncio, os, sys, time
from core.clock import ManualClock
from recordings.pool import WriterProcess
from recordings.recorder import RoomRecording
from tests.rtp_streams import VIDEO_PT, RtpStream, vp8_frames

async def main() -> None:
    clock = ManualClock(0.0)
    writer = WriterProcess(asyncio.get_running_loop())
    recording = RoomRecording(__import__("pathlib").Path(sys.argv[1]), print, writer, clock=clock)
    video = RtpStream(ssrc=1, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    frames = vp8_frames(30, 160, 120)
    for index in range(240):  # 8 s of video
        for data in video.packets(frames[index % 30] if index else frames[0]):
            recording.packet("host", 0, "video", data, 12, 0.0)
        clock.advance(1 / 30)
    await recording.synced()  # written, as a live call's packets would be by now
    print("written", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_files_of_a_killed_writer_are_recovered_on_the_next_start(
    app: Starlette, tmp_path: Path
) -> None:
    seeded = await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    room_id, _ = await open_room(app, seeded)
    org_id = seeded.org_id
    spool = tmp_path / "spool"
    directory = spool / str(org_id) / room_id / "1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(  # noqa: ASYNC220 -- started once; its output is read in a thread
        [sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert writer.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(writer.stdout.readline), 60)
        assert line.strip() == "written"
        # While it lives, its directory is locked: a node starting now leaves it alone.
        recorder = Recorder(services(app).sessions, services(app).storage, spool)
        assert await recorder.recover() == 0
    finally:
        writer.kill()  # SIGKILL: no close, no cues, no duration
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    # Its child, the writer process, dies with it (SIGKILL too): the lock is free a moment later.
    for _ in range(500):
        if _unlocked(directory):
            break
        await asyncio.sleep(0.01)
    left = next(directory.glob("*.webm"))
    assert left.stat().st_size > 0  # flushed cluster by cluster
    assert await recorder.recover() == 1
    async with services(app).sessions() as db:
        row = (await db.scalars(select(Recording).where(Recording.room_id == room_id))).one()
    assert row.state == "recovered" and (row.seat, row.track) == ("host", "camera")
    assert row.key == f"recordings/{org_id}/{room_id}/{left.name}"
    async with services(app).storage.local_file(row.key) as path:
        frames, _, last = decoded(path)
        with av.open(str(path)) as container:
            assert container.duration is not None  # remuxed: a duration now
    assert frames >= 180 and last >= 6.0  # the last cluster (1 s) may be lost: well within 5 s of the kill
    assert row.end_ms >= 6000
    assert not directory.exists()


async def test_a_hung_writer_does_not_hold_the_shutdown(app: Starlette, tmp_path: Path) -> None:
    # A writer stopped dead (a disk that no longer answers: here SIGSTOP) must not hang the server's stop:
    # it is killed after the wait, its recordings end damaged with the reason, their files stay spooled.
    seeded = await seed_org(app, "acme", {"host@acme.example": UserRole.HOST})
    room_id, _ = await open_room(app, seeded)
    recorder = Recorder(services(app).sessions, services(app).storage, tmp_path / "spool")
    failures: list[str] = []
    recording = await recorder.start(room_id, failures.append)
    video = RtpStream(ssrc=1, payload_type=VIDEO_PT, clock_rate=90000, frame_ticks=3000)
    for payloads in vp8_frames(5, 160, 120):
        for data in video.packets(payloads):
            recording.packet("guest", 0, "video", data, HEADER, 0.0)
    await recording.synced()
    writer = recorder.writers.current(asyncio.get_running_loop())
    os.kill(writer.pid, signal.SIGSTOP)
    try:
        await asyncio.wait_for(recorder.aclose(within=1.0), 20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer.pid, signal.SIGCONT)
    assert failures == [WRITER_GONE] and not writer.alive
    assert list((tmp_path / "spool").rglob("*.webm"))  # left for the next start to recover
