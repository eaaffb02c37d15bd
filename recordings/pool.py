"""This node's one recording writer process (``recordings.writer``), shared by every live recording.

:class:`Writers` starts it lazily, at the node's first recording: a node that never records pays nothing
(~0.3 s of CPU and ~50 MB resident for Python and PyAV), and a writer that died is replaced at the next
recording's start. :class:`WriterProcess` multiplexes the recordings over one pipe: each recording buffers
its own framed packets (``recordings.writer.FRAME``) on the loop; every ``FLUSH_EVERY`` seconds the
buffers go to the pipe in one non-blocking write. If the process dies, every recording on it is damaged
with :data:`WRITER_GONE` (what it wrote stays in the spool for the next start to recover); calls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pickle
import socket
import subprocess
import sys
from typing import Any, Protocol

from core.errors import N_
from recordings.writer import FRAME, LENGTH, START

# Seconds between the loop's writes of the buffered packets to the child's pipe: each write wakes the child
# (a context switch on both sides), so fewer, larger writes; a node killed loses at most this much more.
FLUSH_EVERY = 0.25
PIPE_BYTES = 1 << 20  # the child's pipe (the kernel's default is 64 KiB)
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), spelled out for Python builds that lack the name

WRITER_GONE = N_("Recording stopped: the recording process ended unexpectedly. The call goes on.")


class Member(Protocol):
    """A recording as the writer process sees it (``recordings.recorder.RoomRecording``)."""

    buffer: bytearray  # framed packets not yet moved to the pipe
    queued: int  # packets the pipe has not taken (in ``buffer`` or moved but not written)

    def answer(self, message: tuple[Any, ...]) -> None: ...

    def gone(self) -> None: ...


class WriterProcess:
    """One child process writing every recording given to :meth:`add`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "recordings.writer", str(child_end.fileno()), str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(child_end.fileno(),),
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._fds = parent_end
        parent_end.setblocking(False)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._pipe = self.process.stdin.fileno()
        self._answers = self.process.stdout.fileno()
        os.set_blocking(self._pipe, False)
        os.set_blocking(self._answers, False)
        with contextlib.suppress(OSError):  # a larger pipe rides out a slow disk for longer
            fcntl.fcntl(self._pipe, F_SETPIPE_SZ, PIPE_BYTES)
        self.alive = True
        self._members: dict[int, Member] = {}
        self._next = 1
        self._out = bytearray()  # frames moved from the members' buffers, not yet taken by the pipe
        self._moved: list[tuple[Member, int]] = []  # whose packets are in _out, how many
        self._dirty: set[Member] = set()  # members with packets in their buffer
        self._flush_soon = False
        self._writable = False  # waiting for the pipe to take more (add_writer)
        self._read = bytearray()
        self._closing = False
        self._exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self._answers, self._on_answers)
        self._timer = loop.call_later(FLUSH_EVERY, self._tick)

    @property
    def pid(self) -> int:
        return self.process.pid

    def add(self, member: Member, directory: str, origin_ms: int, lock: int) -> int:
        """Start a recording in the child; it takes ``lock`` (a locked open file) over. Its id."""
        if not self.alive:
            raise OSError("the recording writer has exited")
        rid, self._next = self._next, self._next + 1
        socket.send_fds(self._fds, [b"L"], [lock])  # before its START frame: the child reads them in order
        payload = f"{origin_ms}\0{directory}".encode()
        self._out += FRAME.pack(rid, START, 0, 0, 0.0, len(payload)) + payload
        self._members[rid] = member
        self.flush_soon()
        return rid

    def changed(self, member: Member) -> None:
        self._dirty.add(member)

    def flush_soon(self) -> None:
        if not self._flush_soon and self.alive:
            self._flush_soon = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_soon = False
        self._flush()

    def _tick(self) -> None:
        self._flush()
        if self.alive:
            self._timer = self.loop.call_later(FLUSH_EVERY, self._tick)

    def _flush(self) -> None:
        if not self.alive or self._pipe < 0:
            return
        if not self._out:  # the last batch is all taken: the next one, from every member's buffer
            for member in self._dirty:
                if member.buffer:
                    self._out += member.buffer
                    self._moved.append((member, member.queued))
                    member.buffer.clear()
            self._dirty.clear()
        if not self._out:
            self._close_pipe_if_closing()
            return
        try:
            written = os.write(self._pipe, self._out)
        except BlockingIOError:
            written = 0
        except OSError:  # the child is gone; its end of the answers says so too
            self._gone()
            return
        del self._out[:written]
        if not self._out:
            for member, count in self._moved:
                member.queued -= count
            self._moved.clear()
            if self._writable:
                self._writable = False
                self.loop.remove_writer(self._pipe)
            self._close_pipe_if_closing()
        elif not self._writable:
            self._writable = True
            self.loop.add_writer(self._pipe, self._flush)

    def _close_pipe_if_closing(self) -> None:
        if self._closing and self._pipe >= 0:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the end of its input: it finishes every file and exits
            self._pipe = -1

    def _on_answers(self) -> None:
        try:
            chunk = os.read(self._answers, 65536)
        except BlockingIOError:
            return
        if not chunk:  # the child exited
            self._gone()
            return
        self._read += chunk
        while len(self._read) >= LENGTH.size:
            (size,) = LENGTH.unpack_from(self._read)
            if len(self._read) < LENGTH.size + size:
                break
            message = pickle.loads(bytes(self._read[LENGTH.size : LENGTH.size + size]))
            del self._read[: LENGTH.size + size]
            member = self._members.get(message[1])
            if member is not None:
                if message[0] == "finished":
                    del self._members[message[1]]
                member.answer(message)

    def _gone(self) -> None:
        """The child exited (killed, crashed, or closed by :meth:`aclose`): every recording on it ends."""
        if not self.alive:
            return
        self.alive = False
        self._timer.cancel()
        self.loop.remove_reader(self._answers)
        if self._writable and self._pipe >= 0:
            self.loop.remove_writer(self._pipe)
        self._pipe = -1
        members, self._members = self._members, {}
        for member in members.values():
            member.gone()
        self._close()

    def _close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._fds.close()
        self.loop.run_in_executor(None, self.process.wait).add_done_callback(self._reaped)

    def _reaped(self, _: object) -> None:
        if not self._exited.done():
            self._exited.set_result(None)

    async def aclose(self) -> None:
        """Finish every recording still on it and let the child exit (shutdown): the rest of the buffers
        go to the pipe, then the end of stdin finishes the files; the answers are read until it exits."""
        if self.alive and not self._closing:
            self._closing = True
            self._flush()
        await self._exited

    def kill(self) -> None:
        """A writer that stopped answering (a hung disk): killed; its recordings end damaged (WRITER_GONE)
        and their spooled files are recovered at the next start, as after a crash."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self._gone()


class Writers:
    """This node's writer process, started at the first recording and again after one died."""

    def __init__(self) -> None:
        self._process: WriterProcess | None = None

    def current(self, loop: asyncio.AbstractEventLoop) -> WriterProcess:
        if self._process is None or not self._process.alive:
            self._process = WriterProcess(loop)
        return self._process

    async def aclose(self) -> None:
        if self._process is not None:
            await self._process.aclose()
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
