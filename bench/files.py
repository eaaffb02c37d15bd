"""ファイル送信 throughput: a 50 MB file through the server (guest uploads, host downloads), next to a plain
file copy of the same 50 MB in the same run.

The server runs on uvicorn in this process (as ``tsunagu serve`` would), over loopback; the client (httpx)
runs in a process of its own, as the browsers do, streams the body from disk and hashes the download as it
arrives, so neither side holds the file in memory. The server process's resident memory (``VmRSS`` from
``/proc/self/status``) is sampled in a thread during the transfer; ``rss_growth_mb`` is its peak above the
level just before. Targets: ``transfer_mb_per_s`` ≥ 100 over
loopback and ``rss_growth_mb`` < 16.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

from store.migrate import upgrade
from store.models import Role
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import Browser
from web.app import create_app
from web.logs import configure_logging
from web.settings import Settings

MB = 1024 * 1024
CHUNK = 256 * 1024
TARGET_MB_PER_S = 100.0
TARGET_RSS_GROWTH_MB = 16.0


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """The peak VmRSS while running, sampled every few milliseconds in a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes())


async def open_room(host: Browser, guest: Browser) -> str:
    """A new room for the signed-in host and the guest (kept out of the measured part, like sign-in)."""
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id: str = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    return room_id


def client_transfer(
    base_url: str, guest: dict[str, str], host: dict[str, str], csrf: str, room_id: str, source: str
) -> tuple[float, float, str]:
    """In a client process of its own (as the browsers are): upload as the guest, download as the host.

    Returns (upload seconds, download seconds, the downloaded file's sha256).
    """
    path = Path(source)
    size = path.stat().st_size

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    with httpx.Client(base_url=base_url, cookies=guest, timeout=120) as guest_http:
        started = time.perf_counter()
        sent = guest_http.post(
            f"/api/rooms/{room_id}/files",
            params={"name": "bench.bin"},
            content=chunks(),
            headers={"X-CSRF-Token": csrf, "Accept": "application/json", "Content-Length": str(size)},
        )
        uploaded = time.perf_counter()
    if sent.status_code != 201:
        raise RuntimeError(f"upload failed: {sent.status_code} {sent.text}")
    digest = hashlib.sha256()
    with httpx.Client(base_url=base_url, cookies=host, timeout=120) as host_http:
        with host_http.stream("GET", sent.json()["url"]) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                digest.update(chunk)
    downloaded = time.perf_counter()
    return uploaded - started, downloaded - uploaded, digest.hexdigest()


async def transfer(
    client: ProcessPoolExecutor, server: LiveServer, host: Browser, guest: Browser, room_id: str, source: Path
) -> tuple[float, float, str]:
    return await asyncio.get_running_loop().run_in_executor(
        client,
        client_transfer,
        server.url,
        dict(guest.http.cookies.items()),
        dict(host.http.cookies.items()),
        guest.csrf,
        room_id,
        str(source),
    )


def _make_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MB):
            block = os.urandom(MB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _copy_seconds(source: Path, destination: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(source, destination)
    elapsed = time.perf_counter() - started
    destination.unlink()
    return elapsed


async def files_bench(size_mb: int = 50, runs: int = 3, storage_url: str | None = None) -> dict[str, float]:
    configure_logging("console", "error")  # keep the server's request lines out of the figures
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            database_url=f"sqlite:///{root / 'bench.db'}",
            secret_key=secrets.token_hex(32),
            room_file_max_bytes=size_mb * MB,
            storage_url=storage_url,
        )
        settings.data_dir.mkdir()
        await asyncio.to_thread(upgrade, settings.database_url)
        source = root / "source.bin"
        expected = _make_source(source, size_mb * MB)
        server = LiveServer(create_app(settings))
        server.start()
        try:
            server.call(seed_org(server.app, "bench", {"host@bench.example": Role.HOST}))
            host, guest = Browser(server.url), Browser(server.url)
            await host.sign_in("host@bench.example")  # password hashing: kept out of the figures
            client = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            await transfer(client, server, host, guest, await open_room(host, guest), source)  # warm-up
            totals, uploads, downloads, growths = [], [], [], []
            for _ in range(runs):
                room_id = await open_room(host, guest)  # one room per send, as in real meetings
                before = rss_bytes()
                with RssSampler() as sampler:
                    up, down, got = await transfer(client, server, host, guest, room_id, source)
                if got != expected:
                    raise RuntimeError("the downloaded file differs from the upload")
                uploads.append(up)
                downloads.append(down)
                totals.append(up + down)
                growths.append(max(0, sampler.peak - before))
            client.shutdown()
            await host.aclose()
            await guest.aclose()
            copies = [await asyncio.to_thread(_copy_seconds, source, root / "copy.bin") for _ in range(runs)]
        finally:
            server.stop()
    return {
        "transfer_mb_per_s": size_mb / statistics.median(totals),
        "upload_mb_per_s": size_mb / statistics.median(uploads),
        "download_mb_per_s": size_mb / statistics.median(downloads),
        "copy_mb_per_s": size_mb / statistics.median(copies),
        "rss_growth_mb": max(growths) / MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=50, help="file size in MB (default 50)")
    parser.add_argument("--runs", type=int, default=3, help="timed transfers; the median is reported")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="also through S3-compatible storage (a SeaweedFS started on loopback, as the tests do)",
    )
    args = parser.parse_args()
    figures = asyncio.run(files_bench(args.size_mb, args.runs))
    print(f"# {args.size_mb} MB, median of {args.runs} transfers (upload + download) over loopback")
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    met = figures["transfer_mb_per_s"] >= TARGET_MB_PER_S and figures["rss_growth_mb"] < TARGET_RSS_GROWTH_MB
    if args.s3:
        s3 = asyncio.run(_s3_figures(args.size_mb, args.runs))
        print("# the same through STORAGE_URL=s3://… (SeaweedFS on loopback, 8 MiB parts)")
        for name, value in s3.items():
            print(f"s3_{name}: {value:.1f}")
        met = met and s3["rss_growth_mb"] < TARGET_RSS_GROWTH_MB
        print(f"s3_to_local_transfer_ratio: {s3['transfer_mb_per_s'] / figures['transfer_mb_per_s']:.3f}")
    print(f"targets_met: {'yes' if met else 'no'}")
    print(f"transfer_vs_copy_ratio: {figures['transfer_mb_per_s'] / figures['copy_mb_per_s']:.3f}")


async def _s3_figures(size_mb: int, runs: int) -> dict[str, float]:
    from tests.harness.s3 import S3Server

    server = S3Server()
    await asyncio.to_thread(server.start)
    try:
        os.environ.update(server.environment)
        figures = await files_bench(size_mb, runs, server.url("bench"))
    finally:
        server.stop()
    figures.pop("copy_mb_per_s")
    return figures


if __name__ == "__main__":
    main()
