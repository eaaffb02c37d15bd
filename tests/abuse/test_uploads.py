"""Findings 4 (files) and 5: what one sender may push into a meeting, at what pace, and how many at once.
Raw sockets against the live server, released together by a barrier; on this box's disk and on a real S3
server (the rules are the upload path's, wherever the bytes go)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import select

from core.storage import Storage
from recordings.models import RoomFile
from store.models import Role
from tests.abuse.raw_http import Answer, RawUpload
from tests.conftest import storage_url_for
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from tests.joining import Browser
from web.services import services
from web.settings import Settings

MIB = 1024 * 1024
PART = 5 * MIB  # the S3 part size the tests' STORAGE_URL sets: more than this is a multipart upload


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest) -> str | None:
    return storage_url_for(request, request.param)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        room_file_max_bytes=4 * MIB,
        room_files_quota_bytes=3 * MIB,
        org_files_quota_bytes=4 * MIB,
        upload_grace_seconds=60,  # the stalling test shortens it
        uploads_per_user=10,  # the test of the cap lowers it
    )


@dataclass
class Meeting:
    server: LiveServer
    host: Browser
    guest: Browser
    room_id: str

    def files(self) -> list[str]:
        """Every sent file in storage, and every write not finished (a part file, an S3 multipart upload)."""
        storage: Storage = services(self.server.app).storage

        async def query() -> list[str]:
            return await storage.keys("files/") + await storage.unfinished()

        return self.server.call(query())

    async def unfinished(self) -> list[str]:
        """Writes under way, asked on the server's loop without blocking this one (our sockets keep going)."""
        asked = services(self.server.app).storage.unfinished()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asked, self.server.loop))

    def rows(self) -> list[tuple[str, int]]:
        async def query() -> list[tuple[str, int]]:
            async with services(self.server.app).sessions() as db:
                return [(r.room_id, r.size) for r in await db.scalars(select(RoomFile))]

        return self.server.call(query())

    def upload(self, length: int, room_id: str | None = None, expect_continue: bool = True) -> RawUpload:
        path = f"/api/rooms/{room_id or self.room_id}/files?name=data.bin"
        return RawUpload(self.guest, path, length, expect_continue)


async def open_meeting(server: LiveServer, host: Browser) -> tuple[Browser, str]:
    guest = Browser(server.url)
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    return guest, room_id


@pytest.fixture
async def meeting(live_server: LiveServer) -> AsyncIterator[Meeting]:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": Role.HOST}))
    host = Browser(live_server.url)
    await host.sign_in("host@acme.example")
    guest, room_id = await open_meeting(live_server, host)
    yield Meeting(live_server, host, guest, room_id)
    await host.aclose()
    await guest.aclose()


async def send_whole(upload: RawUpload, data: bytes) -> Answer:
    """Head first; the body only once the server asks for it (a refusal comes before a byte is sent)."""
    await upload.start()
    first = await upload.answer()
    if first.status != 100:
        return first
    await upload.send(data)
    return await upload.answer()


async def test_a_body_that_stalls_half_way_is_cut_off_and_leaves_nothing(meeting: Meeting) -> None:
    """Finding 5: half a body, then silence, held a part file and a connection forever. Half is more than a
    part here, so on S3 a multipart upload has begun when the body stalls: it is aborted."""
    state = services(meeting.server.app)
    state.settings = replace(
        state.settings,
        upload_grace_seconds=0.5,
        upload_min_bytes_per_second=MIB,
        room_file_max_bytes=16 * MIB,
    )
    state.file_quotas.room_bytes = state.file_quotas.org_bytes = 16 * MIB
    upload = meeting.upload(2 * (PART + MIB), expect_continue=False)
    await upload.start()
    await upload.send(os.urandom(PART + MIB))
    started = time.monotonic()
    for _ in range(250):  # bounded: the write under way shows while the body is stalled (5 s at most)
        if await meeting.unfinished():
            break
        await asyncio.sleep(0.02)
    assert len(await meeting.unfinished()) == 1
    answer = await upload.answer(within=15)  # 0.5 s of grace + 6 MiB at 1 MiB/s at most, then cut off
    waited = time.monotonic() - started
    assert answer.status == 408 and answer.json()["error"]["code"] == "upload_too_slow"
    assert "遅すぎる" in answer.json()["error"]["message"]
    assert waited < 10
    assert await upload.closed_by_server(within=15)
    await upload.close()
    assert meeting.files() == [] and meeting.rows() == []


async def test_uploads_at_once_per_sender_are_capped(meeting: Meeting) -> None:
    """Finding 5: one sender may have only so many uploads open at once (3 here); more are refused at once."""
    services(meeting.server.app).uploads.per_key = 3
    uploads = [meeting.upload(MIB) for _ in range(5)]
    barrier = asyncio.Barrier(len(uploads))

    async def open_one(upload: RawUpload) -> int:
        await barrier.wait()
        await upload.start()
        return (await upload.answer()).status

    statuses = await asyncio.gather(*(open_one(upload) for upload in uploads))
    assert Counter(statuses) == {100: 3, 429: 2}  # three may send their body, two are told to wait
    finishing = [upload for upload, status in zip(uploads, statuses, strict=True) if status == 100]
    for upload in finishing:
        await upload.send(os.urandom(MIB))
    assert [(await upload.answer()).status for upload in finishing] == [201] * 3
    for upload in uploads:
        await upload.close()
    assert len(meeting.rows()) == 3


async def test_files_stop_at_the_room_and_the_org_quota(meeting: Meeting) -> None:
    """Finding 4: one guest sent 10 × 50 MiB in 2 s. Ten at once now: what fits the room's quota (3 MiB)
    is stored, the rest refused with a clear message; a second meeting stops at the org's (4 MiB)."""
    data = os.urandom(MIB)
    uploads = [meeting.upload(MIB) for _ in range(10)]
    barrier = asyncio.Barrier(len(uploads))

    async def send_one(upload: RawUpload) -> Answer:
        await barrier.wait()
        return await send_whole(upload, data)

    answers = await asyncio.gather(*(send_one(upload) for upload in uploads))
    assert Counter(answer.status for answer in answers) == {201: 3, 413: 7}
    refused = next(answer.json()["error"] for answer in answers if answer.status == 413)
    assert refused["code"] == "room_files_quota"
    assert refused["message"].startswith("この商談で送れるファイルの上限（合計3MB）に達しました。")
    assert sorted(size for _room, size in meeting.rows()) == [MIB] * 3

    guest, second_room = await open_meeting(meeting.server, meeting.host)
    try:
        meeting.guest = guest
        more = [meeting.upload(MIB, second_room) for _ in range(2)]
        first, over = [await send_whole(upload, data) for upload in more]
    finally:
        await guest.aclose()
    assert first.status == 201
    assert over.status == 413 and over.json()["error"]["code"] == "org_files_quota"
    assert "組織のファイル保存容量（0.003906GB）" in over.json()["error"]["message"]
    for upload in uploads + more:
        await upload.close()
    assert len(meeting.rows()) == 4 and len(meeting.files()) == 4  # four files stored, no write left over
