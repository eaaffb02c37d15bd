"""The real ``tsunagu`` command, as a user runs it: the installed console script in a subprocess, with a
fresh ``DATA_DIR`` and nothing of the test process's environment that tsunagu reads.

``Serve.start()`` runs ``tsunagu serve`` on a free loopback port with JSON logs on standard error, kept in a
file; ``problems()`` lists the lines of that log that are tracebacks, errors, or not tsunagu's JSON at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from tests.harness.ports import free_port, wait_for_port
from web.settings import Settings

TSUNAGU = Path(sys.executable).parent / "tsunagu"  # the console script pip installed beside the interpreter
BAD_LEVELS = {"error", "critical", "exception", "fatal"}


def problems(lines: list[str]) -> list[str]:
    """Log lines that are not one JSON event each, or that are error-level or carry a traceback."""
    found = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            found.append(line)  # printed past the logger: a bare traceback, a library's print
            continue
        if not isinstance(event, dict):
            found.append(line)
        elif str(event.get("level", "")).lower() in BAD_LEVELS or "exception" in event or "Traceback" in line:
            found.append(line)
    return found


class Serve:
    """``tsunagu`` commands against one fresh data directory, and ``tsunagu serve`` itself."""

    def __init__(self, root: Path, **settings: str) -> None:
        self.root = root
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in _read_by_tsunagu()}
        self.env = {
            **env,
            "DATA_DIR": str(root / "var"),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "ICE_HOST_ADDRESSES": "127.0.0.1",  # aioice leaves loopback out; the tests have nothing else
            **settings,
        }
        self.log = root / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str) -> str:
        """Run ``tsunagu ARGS`` to completion; its standard output (fails on a non-zero exit)."""
        done = subprocess.run(
            [str(TSUNAGU), *args], env=self.env, cwd=self.root, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"tsunagu {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start(self, timeout: float = 20.0) -> None:
        out = (self.root / "serve.out").open("wb")
        err = self.log.open("wb")
        self._files = [out, err]
        self.process = subprocess.Popen(
            [str(TSUNAGU), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            cwd=self.root,
            stdout=out,
            stderr=err,
        )
        wait_for_port(self.port, timeout)

    def stop(self) -> int:
        """SIGTERM (what a service manager sends) and wait for the graceful shutdown; the exit status."""
        assert self.process is not None
        self.process.terminate()
        try:
            status = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait(timeout=5)
        for file in self._files:
            file.close()
        return status

    def kill(self) -> None:
        """SIGKILL (a crash, the OOM killer): nothing is closed or flushed by the server."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        for file in self._files:
            file.close()

    def add_acme_and_its_host(self, password: str) -> None:
        """What an operator types on a fresh install: the schema, org "acme", its host host@acme.example."""
        assert "database is up to date" in self.run("db", "upgrade")
        self.run("org", "add", "acme", "--name", "ACME")
        self.run("user", "add", "--org", "acme", "--role", "host", "--email", "host@acme.example",
                 "--password", password)  # fmt: skip

    def memory(self, field: str) -> int:
        """A memory figure of the server process from /proc, in bytes (``VmRSS``, ``VmHWM``: the peak)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()

    def log_lines(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The logged events called ``name``."""
        found = []
        for line in self.log_lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == name:
                found.append(event)
        return found


def _read_by_tsunagu() -> set[str]:
    """The environment variables tsunagu's settings read (the test process may have some set)."""
    from dataclasses import fields

    return {field.name.upper() for field in fields(Settings)} | {"HOST", "PORT"}
