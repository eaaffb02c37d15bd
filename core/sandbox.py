"""Untrusted input is parsed in a child process that limits itself before it reads a byte.

:func:`apply_limits` is what such a child calls first (``documents.worker``, the 名刺 image worker in
``web.card_images``): address space, CPU seconds, the size of any file it writes, no core dumps. A limit
already lower is never raised. :func:`run` starts such a child for one input given on standard input, in a
process group of its own, and kills the whole group when it is done or past its wall-clock deadline: the
server only ever reads the child's answer, never the input's pixels or pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where our packages are importable from


def apply_limits(memory_mb: int, cpu_seconds: int, file_bytes: int = 0) -> None:
    """Limit this process (and anything it starts); never raises a limit already lower.

    The CPU limit is what bounds the work (CPU time, not wall time, so a busy machine does not make a file
    fail that passes on an idle one): SIGXCPU at ``cpu_seconds``, SIGKILL five seconds later.
    """

    def limit(which: int, value: int, hard_extra: int = 0) -> None:
        _soft, hard = resource.getrlimit(which)
        ceiling = hard if hard != resource.RLIM_INFINITY else value + hard_extra
        resource.setrlimit(which, (min(value, ceiling), min(value + hard_extra, ceiling)))

    limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    limit(resource.RLIMIT_CPU, cpu_seconds, hard_extra=5)
    limit(resource.RLIMIT_FSIZE, file_bytes)
    limit(resource.RLIMIT_CORE, 0)


def python_env() -> dict[str, str]:
    """The environment for ``python -m <our module>``: our packages importable wherever it runs."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@dataclass(frozen=True)
class Finished:
    status: int  # the exit status; negative: killed by that signal (SIGXCPU, SIGKILL from a limit)
    stdout: bytes
    stderr: bytes


class TimedOut(Exception):
    """The child was still running at its wall-clock deadline (a safety net: CPU time limits it first)."""


async def run(module: str, arguments: list[str], stdin: bytes, deadline: float) -> Finished:
    """``python -m module *arguments`` fed ``stdin``; its output once it exits (within ``deadline`` seconds
    of wall-clock time, else :class:`TimedOut`). The process group is
    killed on the way out whatever happens (timeout, cancellation), so nothing it started outlives it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=python_env(),
    )
    try:
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(stdin), deadline)
        except TimeoutError as exc:
            raise TimedOut() from exc
        return Finished(process.returncode if process.returncode is not None else -1, stdout, stderr)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
