"""Two ``tsunagu serve`` processes on two ports (two boxes, in effect), one redis-server, one PostgreSQL:
Chromium's guest issues its number through node A, the host redeems it through node B; video both ways and
the memo work whichever node is the room's home (acceptance 2 of issue 17, without a page turn or file)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.calls import decoding, meeting
from tests.harness.serve import Serve
from tests.helpers import PASSWORD
from tests.test_browser_memo import same_memo

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture
def two_nodes(tmp_path: Path, shared_store: dict[str, str]) -> Iterator[tuple[Serve, Serve]]:
    shared = {
        **shared_store,
        "SECRET_KEY": "s" * 64,
        "DATA_DIR": str(tmp_path / "var"),  # one storage for both, as a shared STORAGE_URL would be
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    node_a = Serve(tmp_path / "a", NODE_ID="node-a", **shared)
    node_b = Serve(tmp_path / "b", NODE_ID="node-b", **shared)
    node_a.add_acme_and_its_host(PASSWORD)
    node_a.start(timeout=90)  # a loaded shared box can take a while to import and start
    node_b.start(timeout=90)
    deadline = time.monotonic() + 60
    while not (node_a.events("started") and node_b.events("started")):  # bounded: both up
        assert time.monotonic() < deadline
        time.sleep(0.2)
    yield node_a, node_b
    for node in (node_b, node_a):
        node.stop_if_running()


@pytest.mark.timeout(300)  # two servers, PostgreSQL and Chromium start on a shared 2-core box
def test_guest_through_one_node_host_through_the_other(
    two_nodes: tuple[Serve, Serve], new_context: Callable[..., Any]
) -> None:
    node_a, node_b = two_nodes
    host, guest = meeting(new_context, node_a, guest_base=node_a.url, host_base=node_b.url)
    decoding(host, within=15)
    decoding(guest, within=15)
    host_area, guest_area = host.locator("#memo-text"), guest.locator("#memo-text")
    host_area.click()
    host_area.press_sequentially("営業より", delay=20)
    guest_area.click()
    guest_area.press_sequentially("from the guest", delay=20)
    text = same_memo(host, guest)
    assert "営業より" in text and "from the guest" in text
    for page in (host, guest):
        page.context.close()
