"""レコログ in the managers' console: the list's recording column and its has-recording filter, the record
page's link to the replay, the replay's timeline (one read model with the record page), and a manager's
delete (its file gone from storage)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from recordings import retention
from recordings.models import MeetingEvent, MeetingRecord, Recording
from signaling.models import JoinedVia
from signaling.rooms import at, create_room
from store.models import Org, Role
from tests.helpers import csrf_token, seed_org, sign_in
from web.services import services


async def meetings(app: Starlette) -> tuple[int, int, str]:
    """acme's host with two meetings, the first recorded: (recorded record id, other record id, file key)."""
    seeded = await seed_org(app, "acme", {"host@acme.example": Role.HOST, "boss@acme.example": Role.MANAGER})
    made: list[MeetingRecord] = []
    async with services(app).sessions.begin() as db:
        for n in range(2):
            _room, record = await create_room(
                db,
                org_id=seeded.org_id,
                host_id=seeded.users["host@acme.example"],
                via=JoinedVia.NUMBER,
                guest_token=f"guest{n}",
                camera=True,
                recording=n == 0,
                home_node="test",
                now=1_800_000_000.0 + n,
            )
            made.append(record)
        first = made[0]
        key = f"recordings/{seeded.org_id}/{first.room_id}/1-host-camera.webm"
        db.add(
            Recording(
                org_id=seeded.org_id,
                room_id=first.room_id,
                seat="host",
                track="camera",
                key=key,
                origin_at=first.started_at + timedelta(seconds=2),
                start_ms=0,
                end_ms=5000,
                size=4,
                state="done",
            )
        )
        db.add(
            MeetingEvent(room_id=first.room_id, kind="recording_started", detail="", at=at(1_800_000_002.0))
        )
        db.add(MeetingEvent(room_id=first.room_id, kind="screen", detail="host on", at=at(1_800_000_003.0)))
        db.add(
            MeetingEvent(room_id=first.room_id, kind="video", detail="guest network", at=at(1_800_000_004.0))
        )
    await services(app).storage.put(key, b"webm")
    return made[0].id, made[1].id, key


async def test_the_list_shows_and_filters_recorded_meetings(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    recorded, other, _key = await meetings(app)
    await sign_in(client, "host@acme.example")
    everything = (await client.get("/records")).text
    assert f'data-record="{recorded}"' in everything and f'data-record="{other}"' in everything
    assert f'href="/records/{recorded}/replay"' in everything
    assert f'href="/records/{other}/replay"' not in everything
    only = (await client.get("/records?recorded=1")).text
    assert f'data-record="{recorded}"' in only and f'data-record="{other}"' not in only
    assert 'name="recorded" value="1" checked' in only
    page = (await client.get(f"/records/{recorded}")).text
    assert f'href="/records/{recorded}/replay"' in page  # 録画を再生
    assert "録画を開始しました" in page and "担当者が画面共有を開始しました" in page  # the one timeline
    assert "お客さま：映像を利用できません（ネットワークで接続できませんでした）" in page  # and why
    data = (await client.get(f"/records/{recorded}/replay.json")).json()
    texts = [event["text"] for event in data["events"]]
    assert "録画を開始しました" in texts and "担当者が画面共有を開始しました" in texts
    assert [r["track"] for r in data["recordings"]] == ["camera"]
    assert data["recordings"][0]["duration"] == 5000


async def test_a_manager_deletes_a_recording_and_its_file(app: Starlette, client: httpx.AsyncClient) -> None:
    recorded, _other, key = await meetings(app)
    async with services(app).sessions() as db:
        recording_id = await db.scalar(select(Recording.id))
    await sign_in(client, "host@acme.example")  # the meeting's host may watch, not delete
    token = await csrf_token(client, f"/records/{recorded}/replay")
    refused = await client.post(
        f"/records/{recorded}/recordings/{recording_id}/delete", data={"csrf_token": token}
    )
    assert refused.status_code == 404
    await client.post("/logout", data={"csrf_token": token})
    await sign_in(client, "boss@acme.example")
    token = await csrf_token(client, f"/records/{recorded}/replay")
    done = await client.post(
        f"/records/{recorded}/recordings/{recording_id}/delete", data={"csrf_token": token}
    )
    assert done.status_code == 303
    assert await services(app).storage.stat(key) is None
    async with services(app).sessions() as db:
        assert await db.scalar(select(Recording.id)) is None
    assert "この商談には録画がありません。" in (await client.get(f"/records/{recorded}/replay")).text


async def test_the_sweep_deletes_recordings_past_their_orgs_retention(app: Starlette) -> None:
    keeping = await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    forever = await seed_org(app, "other", {"host@other.example": Role.HOST})
    now = at(1_800_000_000.0)
    storage = services(app).storage
    async with services(app).sessions.begin() as db:
        org = await db.get(Org, keeping.org_id)
        assert org is not None
        org.recording_retention_days = 30
        for org_id, age, name in (
            (keeping.org_id, 31, "old"),
            (keeping.org_id, 29, "new"),
            (forever.org_id, 400, "kept"),
        ):
            key = f"recordings/{org_id}/room/{name}-host-camera.webm"
            await storage.put(key, b"webm")
            db.add(
                Recording(
                    org_id=org_id,
                    room_id="room",
                    seat="host",
                    track="camera",
                    key=key,
                    origin_at=now - timedelta(days=age),
                    start_ms=0,
                    end_ms=1,
                    size=4,
                    state="done",
                    created_at=now - timedelta(days=age),
                )
            )
    assert await retention.sweep(services(app).sessions, storage, now) == 1
    async with services(app).sessions() as db:
        left = sorted(await db.scalars(select(Recording.key)))
    assert sorted(key.split("/")[-1].split("-")[0] for key in left) == ["kept", "new"]
    assert await storage.stat(f"recordings/{keeping.org_id}/room/old-host-camera.webm") is None
    assert await retention.sweep(services(app).sessions, storage, now) == 0  # idempotent


async def test_an_admin_sets_the_retention(app: Starlette, client: httpx.AsyncClient) -> None:
    seeded = await seed_org(app, "acme", {"admin@acme.example": Role.ADMIN})
    await sign_in(client, "admin@acme.example")
    token = await csrf_token(client, "/admin/settings")
    form = {"csrf_token": token, "name": "ACME", "recording_retention_days": "90"}
    assert (await client.post("/admin/settings", data=form)).status_code == 303
    bad = await client.post("/admin/settings", data={**form, "recording_retention_days": "-1"})
    assert bad.status_code == 400 and "0〜3,650日" in bad.text
    async with services(app).sessions() as db:
        org = await db.get(Org, seeded.org_id)
        assert org is not None and org.recording_retention_days == 90
