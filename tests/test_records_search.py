"""Japanese substring search over meeting records, on SQLite (FTS5 bigrams) and PostgreSQL (GIN over bigrams):
every answer equals a brute-force ``in`` over the same normalised text, two-character words included."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings import console, guest_info
from recordings.console import COUNT_CAP, RecordFilter, Sort
from recordings.models import MeetingRecord
from recordings.records import save_memo
from recordings.search import grams_for, normalise, parse, plain_scan, record_ids
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import Role
from web import accounts

START = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass
class Store:
    sessions: async_sessionmaker[AsyncSession]
    dialect: str
    org_id: int
    host_id: int
    other_host_id: int


@pytest.fixture
async def store(any_database_url: str) -> AsyncIterator[Store]:
    await asyncio.to_thread(upgrade, any_database_url)
    engine = create_engine(any_database_url)
    sessions = session_factory(engine)
    async with sessions.begin() as db:
        org = await accounts.create_org(db, "acme", "ACME")
        host = await accounts.add_user(db, org, "host@acme.example", "営業 一郎", Role.HOST, "long-enough-1")
        other = await accounts.add_user(
            db, org, "host2@acme.example", "営業 二美", Role.HOST, "long-enough-2"
        )
        ids = (org.id, host.id, other.id)
    yield Store(sessions, engine.dialect.name, *ids)
    await engine.dispose()


async def add_record(store: Store, memo: str = "", n: int = 0, host: int | None = None, **fields: str) -> int:
    async with store.sessions.begin() as db:
        record = MeetingRecord(
            org_id=store.org_id,
            room_id=uuid.uuid4().hex,
            host_id=host or store.host_id,
            connect_id=f"{n:07d}",
            via="number",
            started_at=START + timedelta(minutes=n),
            **fields,
        )
        db.add(record)
        await db.flush()
        await save_memo(db, record.room_id, memo)
        return record.id


async def found(store: Store, query: str) -> set[int]:
    async with store.sessions() as db:
        return set(await db.scalars(record_ids(store.dialect, parse(query))))


WORDS = [
    "お見積もり",
    "見積書",
    "契約",
    "ご契約",
    "価格",
    "納期",
    "ご予算",
    "打ち合わせ",
    "来週",
    "ABC社",
    "ｶﾀﾛｸﾞ",
    "値引き",
]
GLUE = ["の件", "について", "。", "、", "\n", " ", "を確認", "が必要"]


async def test_every_answer_equals_a_brute_force_scan(store: Store) -> None:
    rng = random.Random(15)
    memos = [
        "".join(rng.choice(WORDS) + rng.choice(GLUE) for _ in range(rng.randint(0, 12))) for _ in range(120)
    ]
    memos += [
        "見",
        "見積",
        "",
        "a",
        "見積\n書",
        "見 積",
    ]  # one character, a word split over lines or by a space
    ids = {await add_record(store, memo, n): memo for n, memo in enumerate(memos)}
    queries = ["見積", "見積も", "お見積もり", "見積書", "契約", "ご契約の件", "価格について", "。", "見",
               "積", "の", "件、", "abc", "ＡＢＣ", "abc社", "カタログ", "ｶﾀ", "書\n", "見積 契約",
               "来週 価格 納期", "ない語", "積書", "\u3000見積"]  # fmt: skip
    for query in queries:
        words = [normalise(w) for w in query.split()]
        expected = {i for i, memo in ids.items() if all(w in normalise(memo) for w in words)}
        assert await found(store, query) == expected, query
        async with store.sessions() as db:
            assert set(await db.scalars(plain_scan(store.dialect, parse(query)))) == expected, query
    # Two characters: 「見積」 finds 「お見積もりの件」 (the trigram tokenizer finds nothing here).
    assert await found(store, "見積") >= {i for i, memo in ids.items() if "お見積もり" in memo}


async def test_fields_are_searched_but_never_across_their_boundary(store: Store) -> None:
    a = await add_record(store, "末尾はA", 1, guest_name="Bから始まる", guest_company="株式会社つなぐ")
    b = await add_record(store, "", 2, guest_phone="090-1234-5678", notes="試乗を希望")
    assert await found(store, "つなぐ") == {a}
    assert await found(store, "ab") == set()  # memo ends in A, the name starts with B: two fields, no match
    assert await found(store, "aから") == set()
    assert await found(store, "bから") == {a}
    assert await found(store, "090-1234") == {b}
    assert await found(store, "09012345678") == {b}  # the phone is also indexed as digits
    assert await found(store, "試乗") == {b}


async def test_hostile_queries_are_text_not_syntax(store: Store) -> None:
    tricky = await add_record(store, 'he said "NEAR(a b)" AND * OR -x ^y {z}: col:1', 1)
    await add_record(store, "plain text", 2)
    for query in ['"near', "AND", "* OR", "-x", "^y", "{z}:", "col:1", "(a", '"', "'", "%", "_", "\\"]:
        words = [normalise(w) for w in query.split()]
        expected = (
            {tricky}
            if all(w in normalise('he said "NEAR(a b)" AND * OR -x ^y {z}: col:1') for w in words)
            else set()
        )
        assert await found(store, query) == expected, query
    assert await found(store, "x" * 500) == set()  # cut at 50 characters, still a plain phrase


async def test_edits_and_deletes_keep_the_index_in_step(store: Store) -> None:
    record_id = await add_record(store, "お見積もりの件", 1, guest_name="山田太郎")
    assert await found(store, "山田") == {record_id}
    async with store.sessions.begin() as db:
        record = await db.get(MeetingRecord, record_id)
        assert record is not None
        info = guest_info.GuestInfo(guest_name="鈴木花子", tags=("展示会",))
        changed = await guest_info.edit(db, record, info, store.host_id, "営業 一郎", START)
        assert changed == ["guest_name", "tags"]
    assert await found(store, "山田") == set()
    assert await found(store, "鈴木") == {record_id}
    assert await found(store, "展示") == {record_id}
    assert await found(store, "見積") == {record_id}
    async with store.sessions.begin() as db:
        await db.execute(delete(MeetingRecord).where(MeetingRecord.id == record_id))
    assert await found(store, "見積") == set()
    if (
        store.dialect == "sqlite"
    ):  # the FTS index itself lost the entry (the delete trigger), not only the join
        async with store.sessions() as db:
            left = await db.scalar(
                text("SELECT count(*) FROM meeting_search_fts WHERE meeting_search_fts MATCH '\"見積\"'")
            )
            assert left == 0


async def test_filters_pages_counts_and_sorts(store: Store) -> None:
    for n in range(60):
        host = store.host_id if n % 3 else store.other_host_id
        await add_record(store, f"第{n}回 お見積もり" if n % 2 else f"第{n}回 定例", n, host=host)
    async with store.sessions.begin() as db:
        for record in await db.scalars(
            select(MeetingRecord).where(MeetingRecord.connect_id.in_(["0000010", "0000011"]))
        ):
            record.duration_seconds = 600 + int(record.connect_id)
    base = RecordFilter(org_id=store.org_id)
    async with store.sessions() as db:
        page = await console.find(db, base)
        assert (page.total, page.capped, page.pages, len(page.rows)) == (60, False, 2, 50)
        assert [row.connect_id for row in page.rows[:2]] == ["0000059", "0000058"]  # newest first
        second = await console.find(db, base, 2)
        assert [row.connect_id for row in second.rows] == [f"{n:07d}" for n in range(9, -1, -1)]
        search = RecordFilter(org_id=store.org_id, text="見積", sort=Sort.OLDEST)
        page = await console.find(db, search)
        assert page.total == 30 and [row.connect_id for row in page.rows[:2]] == ["0000001", "0000003"]
        mine = RecordFilter(org_id=store.org_id, host_id=store.host_id, text="見積")
        assert all(row.host_id == store.host_id for row in (await console.find(db, mine)).rows)
        assert (await console.count(db, mine))[0] == len([n for n in range(60) if n % 2 and n % 3])
        dated = RecordFilter(
            org_id=store.org_id,
            started_from=START + timedelta(minutes=10),
            started_before=START + timedelta(minutes=20),
        )
        assert (await console.count(db, dated)) == (10, False)
        longest = await console.find(db, RecordFilter(org_id=store.org_id, sort=Sort.LONGEST))
        assert [row.connect_id for row in longest.rows[:3]] == ["0000011", "0000010", "0000059"]
        one_char = RecordFilter(org_id=store.org_id, text="回 定")  # a one-character word and a two
        assert (await console.count(db, one_char))[0] == 30


async def test_a_common_word_is_counted_up_to_the_cap(store: Store) -> None:
    async with store.sessions.begin() as db:
        rows = [
            {"org_id": store.org_id, "room_id": uuid.uuid4().hex, "host_id": store.host_id,
             "connect_id": f"{n:07d}", "via": "number", "started_at": START, "memo": "見積"}
            for n in range(COUNT_CAP + 5)
        ]  # fmt: skip
        await db.execute(MeetingRecord.__table__.insert(), rows)  # type: ignore[attr-defined]
        from recordings.search import grams_for, index_records

        ids = list(await db.scalars(select(MeetingRecord.id)))
        await index_records(db, [(record_id, grams_for(memo="見積")) for record_id in ids], replace=False)
    async with store.sessions() as db:
        total, capped = await console.count(db, RecordFilter(org_id=store.org_id, text="見積"))
        assert (total, capped) == (COUNT_CAP + 1, True)
        page = await console.find(db, RecordFilter(org_id=store.org_id, text="見積"), number=999)
        assert page.number == COUNT_CAP // console.PAGE_SIZE and len(page.rows) == console.PAGE_SIZE
        assert await db.scalar(select(func.count()).select_from(MeetingRecord)) == COUNT_CAP + 5


def test_the_migration_indexes_memos_as_the_app_does() -> None:
    import importlib

    migration = importlib.import_module("store.migrations.versions.0007_meeting_records_console")
    rng = random.Random(7)
    alphabet = "見積もりの件 お\n\t,\"'AaＡｂ1１😀ｶﾀ。、"
    for _ in range(500):
        memo = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert migration.memo_grams(memo) == grams_for(memo=memo), memo


async def test_records_from_before_the_migration_become_searchable(any_database_url: str) -> None:
    await asyncio.to_thread(upgrade, any_database_url, "0004")
    engine = create_engine(any_database_url)
    try:
        async with engine.begin() as connection:  # the schema of revision 0004, written as it was then
            await connection.execute(
                text(
                    "INSERT INTO orgs (slug, name, created_at, terms_of_use, personal_data_policy,"
                    " privacy_policy, default_camera, default_recording, host_file_send)"
                    " VALUES ('old', 'Old', :t, '', '', '', true, false, true)"
                ),
                {"t": START},
            )
            await connection.execute(
                text(
                    "INSERT INTO meeting_records (org_id, room_id, connect_id, via, started_at, memo)"
                    " VALUES (1, 'r1', '0000001', 'number', :t, 'お見積もりの件')"
                ),
                {"t": START},
            )
        await asyncio.to_thread(upgrade, any_database_url)
        async with session_factory(engine)() as db:
            found = set(await db.scalars(record_ids(engine.dialect.name, parse("見積"))))
        assert found == {1}
    finally:
        await engine.dispose()
