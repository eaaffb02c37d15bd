"""商談記録 at scale: 100,000 meetings with ~400-character Japanese memos in SQLite.

- **Search**: the records list's queries for words of 2 to 6 characters (two-character words such as 見積 and
  契約 included, common and rare ones, and ones that occur nowhere): the capped count and the first page, as
  ``/records?q=…`` runs them (``recordings.console.find``), on the server's own event loop and engine.
  ``search_p99_ms`` (target < 100) against the same answers from a plain scan of every memo in the same run
  (``scan_p99_ms``); every query's full result count (and its newest 50 ids) is checked against the scan.
  ``search_page_p99_ms`` is the whole HTML page over HTTP, for reference.
- **Export**: ``/records.csv`` of all 100,000 meetings over HTTP, read by a client in a process of its own
  (as a browser would), ``export_rows_per_s`` (target ≥ 20,000) and the server process's
  ``export_rss_growth_mb`` (target < 32: the CSV is streamed a chunk of rows at a time), against a plain
  ``SELECT`` of the same rows and columns through the same engine (``select_rows_per_s``,
  ``select_rss_growth_mb``).

The meetings are seeded with ``executemany`` through SQLAlchemy Core, and indexed by the app's own writer
(``recordings.search.index_records``), not the ORM row by row. Run: ``.venv/bin/python -m bench.records``;
``--postgres`` runs the same on a throwaway PostgreSQL cluster (fewer ``--meetings``: GIN indexing is slow).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import random
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select, text

from bench.files import RssSampler, rss_bytes
from recordings import console
from recordings.console import RecordFilter
from recordings.models import MeetingRecord
from recordings.search import grams_for, index_records, parse, record_ids
from store.migrate import upgrade
from store.models import Role, User
from tests.harness.live import LiveServer
from tests.helpers import PASSWORD
from tests.joining import Browser
from web import accounts, passwords
from web.app import create_app
from web.logs import configure_logging
from web.services import services
from web.settings import Settings

TARGET_SEARCH_P99_MS = 100.0
TARGET_EXPORT_ROWS_PER_S = 20_000.0
TARGET_EXPORT_RSS_MB = 32.0
MEMO_CHARS = 400
MB = 1024 * 1024
START = datetime(2025, 1, 6, tzinfo=UTC)

# Words of a sales meeting, common ones more often than rare ones; sentences are made of them.
COMMON = """お見積もり 見積書 ご契約 契約書 価格 納期 ご予算 導入 ご検討 担当者 来週 資料 ご提案
打ち合わせ お電話 ご連絡""".split()
USUAL = """請求書 値引き 保守 サポート オプション 稟議 決裁 訪問 メール 比較 他社 初期費用 月額 年間
ライセンス 台数 拠点 本社""".split()
RARE = "キャンペーン 下取り 試乗 カタログ 頭金 ボーナス払い 分割 成約 失注 保留 展示会 紹介 デモ機".split()
JOINS = "の件 について を確認 は が も で に と より".split()
ENDS = "。 、 です。 ます。 とのこと。 予定です。 をご希望。 済み。 は未定。".split()
QUERIES = [
    "見積", "契約", "納期", "価格", "稟議", "導入", "資料", "決裁", "試乗", "頭金",  # two characters
    "見積書", "ご予算", "ご連絡", "下取り", "補助金", "ご提案",  # three
    "お見積も", "ライセン", "デモ機の", "展示会の",  # four
    "打ち合わせ", "来週ご連", "キャンペ", "の件につ",  # four or five
    "キャンペーン", "ボーナス払い", "お見積もりの", "見積書を確認",  # six
    "契約見積", "納期稟議",  # found nowhere
]  # fmt: skip


def memos(count: int, seed: int = 15) -> list[str]:
    """~400-character memos: one long text of random sentences, cut into pieces (seeding must be quick)."""
    rng = random.Random(seed)
    words = COMMON * 6 + USUAL * 2 + RARE

    def sentence() -> str:
        first, second = rng.choice(words), rng.choice(words)
        return first + rng.choice(JOINS) + second + rng.choice(ENDS) + ("\n" if rng.random() < 0.25 else "")

    pool = [sentence() for _ in range(20_000)]
    average = sum(map(len, pool)) / len(pool)
    stream = "".join(rng.choices(pool, k=int(count * MEMO_CHARS / average) + 100))
    return [stream[n * MEMO_CHARS : (n + 1) * MEMO_CHARS] for n in range(count)]


async def seed(server: LiveServer, count: int) -> tuple[int, float, float]:
    """``count`` ended meetings of one org and 10 hosts, indexed by the app's writer: (org id, seconds, CPU
    seconds of this process)."""
    sessions = services(server.app).sessions
    password = passwords.hash_now(secrets.token_urlsafe(16))  # once: argon2 is slow on purpose
    async with sessions.begin() as db:
        org = await accounts.create_org(db, "bench", "ベンチ株式会社")
        users = [
            {"org_id": org.id, "email": f"host{i}@bench.example", "display_name": f"営業 {i}",
             "role": Role.HOST, "password_hash": password, "is_active": True, "locale": ""}
            for i in range(10)
        ]  # fmt: skip
        await db.execute(insert(User.__table__), users)  # type: ignore[arg-type]
        hosts = list(await db.scalars(select(User.id).where(User.org_id == org.id).order_by(User.id)))
        await accounts.add_user(db, org, "boss@bench.example", "主任", Role.MANAGER, PASSWORD)
        org_id = org.id
    started, cpu = time.perf_counter(), time.process_time()
    texts = memos(count)
    records = MeetingRecord.__table__  # a Core insert: one executemany, no ORM bookkeeping per row
    chunk = 5000
    for first in range(0, count, chunk):
        rows = []
        for n in range(first, min(count, first + chunk)):
            begin = START + timedelta(minutes=5 * n)
            rows.append(
                {"id": n + 1, "org_id": org_id, "room_id": secrets.token_hex(16), "host_id": hosts[n % 10],
                 "connect_id": f"{n:07d}", "via": "number" if n % 4 else "link", "started_at": begin,
                 "ended_at": begin + timedelta(minutes=20 + n % 40), "duration_seconds": (20 + n % 40) * 60,
                 "memo": texts[n], "guest_name": "", "guest_reading": "", "guest_company": "",
                 "guest_phone": "", "notes": ""}
            )  # fmt: skip
        grams = [(n + 1, grams_for(memo=texts[n])) for n in range(first, min(count, first + chunk))]
        async with sessions.begin() as db:
            await db.execute(insert(records), rows)  # type: ignore[arg-type]
            await index_records(db, grams, replace=False)
    return org_id, time.perf_counter() - started, time.process_time() - cpu


async def timed_find(server: LiveServer, org_id: int, word: str) -> tuple[float, list[int]]:
    """On the server's loop: the list's queries for ``word`` (capped count, first page): (ms, page ids)."""
    async with services(server.app).sessions() as db:
        started = time.perf_counter()
        page = await console.find(db, RecordFilter(org_id=org_id, text=word))
        return (time.perf_counter() - started) * 1000, [row.id for row in page.rows]


async def checked_scan(server: LiveServer, org_id: int, word: str) -> tuple[float, int, list[int], int]:
    """On the server's loop: a plain scan of every memo for ``word``; (ms, matches, the newest 50 ids, and
    the index's full count of matches, to compare)."""
    async with services(server.app).sessions() as db:
        dialect = db.get_bind().dialect.name
        position = func.instr if dialect == "sqlite" else func.strpos
        started = time.perf_counter()
        scan = (
            select(MeetingRecord.id)
            .where(MeetingRecord.org_id == org_id, position(MeetingRecord.memo, word) > 0)
            .order_by(MeetingRecord.id.desc())
        )
        ids = list(await db.scalars(scan))
        elapsed = (time.perf_counter() - started) * 1000
        matching = MeetingRecord.id.in_(record_ids(dialect, parse(word)))
        full = int(await db.scalar(select(func.count()).where(MeetingRecord.org_id == org_id, matching)) or 0)
        return elapsed, len(ids), ids[: console.PAGE_SIZE], full


async def analyze(server: LiveServer) -> None:
    async with services(server.app).engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def client_export(base_url: str, cookies: dict[str, str], query: str = "") -> tuple[float, int, str]:
    """In a process of its own: download /records.csv, count its records (CRLF ends them; memos' own line
    breaks are LF), keep its first line. (seconds, records, header)"""
    records, tail, head = 0, b"", b""
    with httpx.Client(base_url=base_url, cookies=cookies, timeout=300) as http:
        started = time.perf_counter()
        with http.stream("GET", "/records.csv" + query) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                data = tail + chunk
                records += data.count(b"\r\n")
                tail = data[-1:] if data.endswith(b"\r") else b""
                head = head or data[: data.find(b"\r\n")]
        elapsed = time.perf_counter() - started
    return elapsed, records - 1, head.decode("utf-8")


async def plain_select(server: LiveServer, org_id: int) -> tuple[float, int]:
    """The same rows and columns as the export, read with a plain streamed SELECT. (seconds, rows)"""
    columns = list(MeetingRecord.__table__.columns)
    async with services(server.app).sessions() as db:
        started = time.perf_counter()
        result = await db.stream(
            select(*columns)
            .where(MeetingRecord.org_id == org_id)
            .order_by(MeetingRecord.id.desc())
            .execution_options(yield_per=500)
        )
        rows = 0
        async for partition in result.partitions(500):
            rows += len(partition)
        return time.perf_counter() - started, rows


async def bench(count: int, repeats: int, database_url: str | None = None) -> dict[str, float | str]:
    configure_logging("console", "error")
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            database_url=database_url or f"sqlite:///{root / 'bench.db'}",
            secret_key=secrets.token_hex(32),
        )
        settings.data_dir.mkdir()
        await asyncio.to_thread(upgrade, settings.database_url)
        server = LiveServer(create_app(settings))
        server.start()
        figures: dict[str, float | str] = {}
        try:
            org_id, seconds, seed_cpu = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(seed(server, count), server.loop)
            )
            figures["meetings"] = count
            figures["seed_seconds"] = seconds
            figures["seed_cpu_seconds"] = seed_cpu
            if database_url:  # PostgreSQL plans by statistics: a running server's autovacuum has them
                server.call(analyze(server))
            gc.collect()

            searched, scanned, page_ms, mismatches = [], [], [], []
            manager = Browser(server.url)
            manager.http.timeout = httpx.Timeout(60.0)  # a slow page is a figure, not a failure
            await manager.sign_in("boss@bench.example")
            for word in QUERIES:  # warm the caches once, as a running server's are
                server.call(timed_find(server, org_id, word))
            cpu = time.process_time()
            for _ in range(repeats):
                for word in QUERIES:
                    searched.append(server.call(timed_find(server, org_id, word))[0])
            figures["search_cpu_ms_per_query"] = (time.process_time() - cpu) * 1000 / len(searched)
            for word in QUERIES:  # each answer checked against a plain scan, which is the baseline too
                _ms, page_ids = server.call(timed_find(server, org_id, word))
                elapsed, matches, newest, full = server.call(checked_scan(server, org_id, word))
                scanned.append(elapsed)
                if full != matches or page_ids != newest:
                    mismatches.append(f"{word}: index {full}, scan {matches}")
                started = time.perf_counter()
                page = await manager.http.get("/records", params={"q": word})
                page_ms.append((time.perf_counter() - started) * 1000)
                if page.status_code != 200:
                    raise AssertionError(f"/records?q={word}: {page.status_code}")
            figures["search_queries"] = len(searched)
            figures["search_p50_ms"] = statistics.median(searched)
            figures["search_p99_ms"] = p99(searched)
            figures["scan_p50_ms"] = statistics.median(scanned)
            figures["scan_p99_ms"] = p99(scanned)
            figures["search_page_p99_ms"] = p99(page_ms)
            figures["search_counts_match_scan"] = "no: " + "; ".join(mismatches) if mismatches else "yes"

            client = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            cookies = dict(manager.http.cookies.items())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(client, client_export, server.url, cookies, "?q=頭金")  # warm-up
            gc.collect()
            before, cpu = rss_bytes(), time.process_time()
            with RssSampler() as sampler:
                elapsed, records, header = await loop.run_in_executor(
                    client, client_export, server.url, cookies
                )
            figures["export_server_cpu_us_per_row"] = (time.process_time() - cpu) * 1e6 / max(1, records)
            if records != count or not header.startswith("\ufeff接続ID"):
                raise AssertionError(
                    f"the CSV has {records} records (expected {count}), header {header[:20]!r}"
                )
            figures["export_rows_per_s"] = records / elapsed
            figures["export_rss_growth_mb"] = max(0, sampler.peak - before) / MB
            client.shutdown()
            await manager.aclose()
            gc.collect()
            before, cpu = rss_bytes(), time.process_time()
            with RssSampler() as sampler:
                seconds_select, rows = server.call(plain_select(server, org_id), timeout=300)
            figures["select_cpu_us_per_row"] = (time.process_time() - cpu) * 1e6 / max(1, rows)
            figures["select_rows_per_s"] = rows / seconds_select
            figures["select_rss_growth_mb"] = max(0, sampler.peak - before) / MB
        finally:
            server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meetings", type=int, default=100_000, help="meetings to seed (default 100,000)")
    parser.add_argument("--repeats", type=int, default=4, help="times each search word is timed")
    parser.add_argument(
        "--postgres", action="store_true", help="on a throwaway PostgreSQL cluster instead of SQLite"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.postgres:
        from tests.harness.postgres import PostgresCluster

        cluster = PostgresCluster()
        cluster.start()
        try:
            url = asyncio.run(cluster.create_database())
            figures = asyncio.run(bench(args.meetings, args.repeats, url))
        finally:
            cluster.stop()
    else:
        figures = asyncio.run(bench(args.meetings, args.repeats))
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(f"# {args.meetings:,} meetings of ~{MEMO_CHARS} characters in {where}; {len(QUERIES)} search words")
    for name, value in figures.items():
        print(f"{name}: {value:.1f}" if isinstance(value, float) else f"{name}: {value}")
    met = (
        float(figures["search_p99_ms"]) < TARGET_SEARCH_P99_MS
        and figures["search_counts_match_scan"] == "yes"
        and float(figures["export_rows_per_s"]) >= TARGET_EXPORT_ROWS_PER_S
        and float(figures["export_rss_growth_mb"]) < TARGET_EXPORT_RSS_MB
    )
    print(f"bench_seconds: {time.perf_counter() - started:.0f}")
    print(f"targets_met: {'yes' if met else 'no'}")
    print(f"search_vs_scan_p99_ratio: {float(figures['search_p99_ms']) / float(figures['scan_p99_ms']):.3f}")
    ratio = float(figures["export_rows_per_s"]) / float(figures["select_rows_per_s"])
    print(f"export_vs_select_rows_ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
