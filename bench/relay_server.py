"""The server side of bench/relay.py: a child process answering the load generator's offers over a pipe,
on the event loop ``tsunagu serve`` runs (``web.serving``), with the relay ``media.MediaRooms`` (passthrough)
or aiortc's decode/re-encode ``MediaRelay`` (transcode, the baseline).

``recording``: the passthrough relay with every room recorded (``recordings.recorder.RoomRecording`` as its
packet sink, writing WebM files to a temporary directory), for bench/recording.py.

Messages on the pipe: ``("answer", room, seat, offer_sdp)`` → the answer SDP; ``("counters",)`` → the relay's
counters as a dict; ``("stop",)`` → ``"stopped"`` once everything is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media import MediaRooms, MediaSettings, hooks
from recordings.recorder import RoomRecording, Writers
from web import serving

LOOPBACK = ("127.0.0.1",)


async def transcode_answer(
    pcs: dict[tuple[str, str], RTCPeerConnection], relay: object, room: str, seat: str, offer: str
) -> str:
    """aiortc's ordinary path: the host's track is received (decoded), the guest gets it re-encoded."""
    from aiortc.contrib.media import MediaRelay

    from media.peer import LAYOUT, codec_preferences

    assert isinstance(relay, MediaRelay)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs[(room, seat)] = pc
    transceivers = []
    for kind in LAYOUT:
        transceiver = pc.addTransceiver(kind, direction="sendrecv")
        transceiver.setCodecPreferences(codec_preferences(kind))
        transceivers.append(transceiver)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    if seat == "guest":
        host = pcs[(room, "host")]
        transceivers[0].sender.replaceTrack(relay.subscribe(host.getTransceivers()[0].receiver.track))
    hooks.gather_on(transceivers[0].receiver.transport.transport.iceGatherer, LOOPBACK)
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


async def serve(conn: Connection, mode: str) -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("aiortc").setLevel(logging.ERROR)
    rooms = MediaRooms(MediaSettings(host_addresses=LOOPBACK))
    pcs: dict[tuple[str, str], RTCPeerConnection] = {}
    recorded: dict[str, RoomRecording] = {}
    writers = Writers()  # the node's one writer process, started at the first recording
    spool = tempfile.TemporaryDirectory(prefix="tsunagu-bench-recording-")
    relay: object = None
    if mode == "transcode":
        from aiortc.contrib.media import MediaRelay

        relay = MediaRelay()
    try:
        while True:
            message = await asyncio.to_thread(conn.recv)
            if message[0] == "stop":
                break
            if message[0] == "counters":
                conn.send(vars(rooms.counters()))
                continue
            _, room, seat, offer = message
            if mode == "transcode":
                answer = await transcode_answer(pcs, relay, room, seat, offer)
            else:
                answer = await rooms.answer(room, seat, offer)
                if mode == "recording" and room not in recorded:
                    recording = RoomRecording(
                        Path(spool.name) / room, _ignore, writers.current(asyncio.get_running_loop())
                    )
                    recorded[room] = recording
                    rooms.record(room, recording)
            conn.send(answer)
    finally:
        for recording in recorded.values():
            await recording.stop()
        await writers.aclose()
        spool.cleanup()
        await rooms.aclose()
        for pc in pcs.values():
            await pc.close()
        conn.send("stopped")


def _ignore(reason: str) -> None:
    print(f"# recording failed: {reason}")


def server_main(conn: Connection, mode: str, loop: serving.Loop) -> None:
    """The child process's entry point: ``serve`` on ``loop``, made the way uvicorn makes it."""
    with asyncio.Runner(loop_factory=serving.loop_factory(loop)) as runner:
        runner.run(serve(conn, mode))


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def children_cpu_seconds(pid: int) -> float:
    """utime + stime of the live child processes of ``pid`` (the recorder's writers)."""
    total = 0.0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for child in pids:
            try:
                total += sum(cpu_seconds(int(child)))
            except OSError:  # exited meanwhile
                continue
    return total
