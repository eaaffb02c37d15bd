"""The server as users run it: the ``tsunagu serve`` command in a process of its own, with a fresh DATA_DIR.

For figures that must be the server's own (its memory), which an in-process server would share with the
test. The org "acme" and its host are made with the same command (``tsunagu org add`` / ``user add``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness.ports import free_port, wait_for_port
from tests.helpers import PASSWORD

TSUNAGU = Path(sys.executable).with_name("tsunagu")
ROOT = Path(__file__).resolve().parents[2]  # the code under test, whatever the installed copy points at


class ServedCommand:
    def __init__(self, data_dir: Path, **environment: str) -> None:
        self.port = free_port()
        self.log = data_dir / "server.log"
        self.env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "SECRET_KEY": secrets.token_hex(32),
            "LOG_FORMAT": "json",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **environment,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *arguments: str) -> None:
        executable = str(TSUNAGU) if TSUNAGU.exists() else shutil.which("tsunagu") or "tsunagu"
        subprocess.run([executable, *arguments], env=self.env, check=True, capture_output=True, timeout=60)

    def start(self, hosts: int = 1) -> None:
        """Migrate, add org "acme" with ``hosts`` hosts (host@…, then host2@…, host3@…), and serve."""
        self.command("db", "upgrade")
        self.command("org", "add", "acme", "--name", "ACME")
        for n in range(1, hosts + 1):
            email = "host@acme.example" if n == 1 else f"host{n}@acme.example"
            self.command(
                "user", "add", "--org", "acme", "--role", "host", "--email", email, "--password", PASSWORD
            )
        executable = str(TSUNAGU) if TSUNAGU.exists() else "tsunagu"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([executable, "serve"], env=self.env, stdout=log, stderr=log)
        wait_for_port(self.port)

    def status(self, field: str) -> int:
        """A memory figure of the server process from /proc, in bytes (``VmRSS``, ``VmHWM``: the peak)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
