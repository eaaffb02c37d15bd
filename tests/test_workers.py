"""``tsunagu serve --workers N``: N nodes share one port, each with its own node id; refused without Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from store.migrate import upgrade
from tests.harness.ports import free_port
from tests.harness.redis import RedisServer


def serve(tmp_path: Path, port: int, *args: str, redis_url: str | None = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}",
        "SECRET_KEY": "k" * 64,
        "LOG_FORMAT": "json",
        "NODE_ID": "box",
    }
    env.pop("REDIS_URL", None)
    env.pop("WORKERS", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    command = [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_more_than_one_worker_without_redis_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    process = serve(tmp_path, free_port(), "--workers", "2")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "--workers 2 (WORKERS) needs REDIS_URL" in output


def test_two_workers_share_the_port_each_its_own_node(tmp_path: Path, redis_server: RedisServer) -> None:
    upgrade(f"sqlite:///{tmp_path / 'workers.db'}")
    port = free_port()
    process = serve(tmp_path, port, "--workers", "2", redis_url=redis_server.url)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        nodes: set[str] = set()
        deadline = time.monotonic() + 90
        while len(nodes) < 2 and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
            if not line:
                time.sleep(0.1)  # bounded: the deadline above
                continue
            lines.append(line)
            if line.startswith("{") and json.loads(line).get("event") == "started":
                nodes.add(json.loads(line)["node"])
        assert len(nodes) == 2, "".join(lines)
        assert all(node.startswith("box-") for node in nodes)  # NODE_ID, then each worker's own suffix
        pids = {int(node.removeprefix("box-")) for node in nodes}
        for _ in range(20):  # a new connection each time: whichever worker the kernel picks answers
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        # A worker that dies is replaced by a new process, so a new node.
        os.kill(next(iter(pids)), signal.SIGKILL)
        deadline = time.monotonic() + 90
        while len(nodes) < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                time.sleep(0.1)
                continue
            lines.append(line)
            if line.startswith("{") and json.loads(line).get("event") == "started":
                nodes.add(json.loads(line)["node"])
        assert len(nodes) == 3, "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0
