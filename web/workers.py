"""``tsunagu serve --workers N``: N nodes on one box, sharing one listening socket.

The parent binds the socket once and starts N processes (spawned, not forked: each builds its own app, event
loop and connections); the kernel hands each new connection to one of them. Each worker is its own node with
its own node id (``NODE_ID`` or the host name, then ``-`` and the worker's process id: two processes must
never share one), so the nodes need Redis to reach each other's rooms: more than one worker without
``REDIS_URL`` is refused. A worker that dies is started again (a new process, so a new node id); the parent
stops them all on SIGINT/SIGTERM.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from web.settings import Settings

RESTART_LIMIT = 20  # workers started again after dying, at most, before the parent gives up


class WorkersNeedRedis(Exception):
    def __init__(self, workers: int) -> None:
        super().__init__(
            f"--workers {workers} (WORKERS) needs REDIS_URL: each worker is its own node, and nodes reach "
            "each other's rooms through Redis. Set REDIS_URL=redis://… or run one worker."
        )


def check(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    if workers > 1 and not settings.redis_url:
        raise WorkersNeedRedis(workers)


def node_id(base: str, pid: int) -> str:
    """A worker's node id: unique among the processes of one host."""
    return f"{base}-{pid}"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


Tls = tuple[Path, Path | None] | None


def _worker(settings: Settings, sock: socket.socket, tls: Tls) -> None:
    import uvicorn

    from web import serving
    from web.app import create_app
    from web.logs import configure_logging

    settings = replace(settings, node_id=node_id(settings.node_id, os.getpid()))
    configure_logging(settings.log_format, settings.log_level)
    # The same configuration (loop, logging, TLS) as one process serving: only the socket is shared.
    config = serving.config(create_app(settings), settings.host, settings.port, tls=tls)
    uvicorn.Server(config).run(sockets=[sock])


def run(settings: Settings, workers: int, tls: Tls = None) -> None:
    """Serve with ``workers`` processes on ``settings.host``:``settings.port`` until SIGINT or SIGTERM."""
    check(settings, workers)
    sock = bind(settings.host, settings.port)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        args = (settings, sock, tls)
        process = context.Process(target=_worker, args=args, name="tsunagu-worker")
        process.start()
        return process

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(workers)]
    restarts = 0
    try:
        while not stopping:
            ended = wait([p.sentinel for p in processes], timeout=0.5)
            for process in [p for p in processes if p.sentinel in ended]:
                processes.remove(process)
                if not stopping and restarts < RESTART_LIMIT:
                    restarts += 1
                    processes.append(start())
            if not processes:
                break
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # uvicorn's graceful shutdown
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        sock.close()
