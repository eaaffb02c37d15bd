"""``tsunagu serve --workers 2`` with one redis-server and one PostgreSQL, Chromium's host and guest in a call
on the shared port (issue 17). A call: video, memo, a page turn and a file complete whichever worker each
request and socket lands on (acceptance 2; tests/test_two_ports.py puts guest and host on different nodes
on purpose). A node killed mid-call (acceptance 3): SIGKILL the room's home worker; the other worker adopts
the room, both pages reconnect on their own, the memo is intact and video plays again through a new peer
connection, within 15 s of the kill."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.models import RoomRow
from store.db import create_engine
from tests.calls import decoding, meeting
from tests.conftest import in_thread
from tests.harness.serve import Serve
from tests.helpers import PASSWORD
from tests.test_browser_memo import same_memo
from tests.test_two_ports import memo_page_and_file

pytestmark = [pytest.mark.browser, pytest.mark.redis]

BACK_WITHIN = 15.0  # seconds from the kill until both are back in the call with video


def started_nodes(served: Serve) -> set[str]:
    return {str(event["node"]) for event in served.events("started")}


@pytest.fixture
def cluster(tmp_path: Path, shared_store: dict[str, str]) -> Iterator[Serve]:
    served = Serve(tmp_path, **shared_store, WORKERS="2", NODE_ID="box")
    served.add_acme_and_its_host(PASSWORD)
    served.start(timeout=90)
    deadline = time.monotonic() + 60
    while len(started_nodes(served)) < 2:  # bounded: both workers up
        assert time.monotonic() < deadline, "\n".join(served.log_lines()[-20:])
        time.sleep(0.2)
    yield served
    served.stop_if_running()


def restarts_of(page: Any) -> int:
    return int(page.evaluate("window.tsunaguMedia.link.restarts"))


def home_of(served: Serve, room_id: str) -> str:
    async def read() -> str:
        engine = create_engine(served.env["DATABASE_URL"])
        try:
            async with engine.connect() as db:
                home = await db.scalar(
                    RoomRow.__table__.select()
                    .with_only_columns(RoomRow.home_node)
                    .where(RoomRow.id == room_id)
                )
                return str(home)
        finally:
            await engine.dispose()

    return str(in_thread(asyncio.run, read()))


@pytest.mark.timeout(300)  # two worker processes, PostgreSQL and Chromium start on a shared 2-core box
def test_a_call_on_two_workers_sharing_one_port(cluster: Serve, new_context: Callable[..., Any]) -> None:
    host, guest = meeting(new_context, cluster)
    decoding(host, within=15)
    decoding(guest, within=15)
    memo_page_and_file(host, guest)
    match = re.search(r"/rooms/([0-9a-f]{32})$", host.url)
    assert match
    assert home_of(cluster, match.group(1)) in started_nodes(cluster)  # homed on one of the two workers
    for page in (host, guest):
        page.context.close()


@pytest.mark.timeout(300)  # two worker processes, PostgreSQL and Chromium start on a shared 2-core box
def test_the_home_worker_is_killed_mid_call_and_the_call_comes_back(
    cluster: Serve, new_context: Callable[..., Any]
) -> None:
    host, guest = meeting(new_context, cluster)
    decoding(host, within=10)
    decoding(guest, within=10)
    host_area, guest_area = host.locator("#memo-text"), guest.locator("#memo-text")
    host_area.click()
    host_area.press_sequentially("まえ", delay=20)
    guest_area.click()
    guest_area.press_sequentially("before", delay=20)
    before = same_memo(host, guest)
    assert "まえ" in before and "before" in before

    match = re.search(r"/rooms/([0-9a-f]{32})$", host.url)
    assert match
    room_id = match.group(1)
    home = home_of(cluster, room_id)
    assert home in started_nodes(cluster)
    restarts = [restarts_of(page) for page in (host, guest)]
    os.kill(int(home.removeprefix("box-")), signal.SIGKILL)
    killed = time.monotonic()

    # Back: each page opened a new media connection to the new home, and decodes fresh video through it.
    for page, before_kill in zip((host, guest), restarts, strict=True):
        page.wait_for_function(
            "n => window.tsunaguMedia.link.restarts > n", arg=before_kill, timeout=BACK_WITHIN * 1000
        )
    for page in (host, guest):
        decoding(page, within=max(1.0, BACK_WITHIN - (time.monotonic() - killed)))
    host.get_by_text("お客さまが接続しています。").wait_for(timeout=1000)
    back = time.monotonic() - killed
    assert back <= BACK_WITHIN, back
    new_home = home_of(cluster, room_id)
    assert new_home != home and new_home in started_nodes(cluster)
    assert [e["room"] for e in cluster.events("room.adopted")] == [room_id]

    # Nothing typed was lost, and typing goes on.
    assert same_memo(host, guest) == before
    guest_area.press_sequentially("after", delay=20)
    after = same_memo(host, guest)
    assert "まえ" in after and "before" in after and "after" in after
    print(f"back in the call {back:.1f} s after the kill")
    for page in (host, guest):
        page.context.close()
