"""Two ``tsunagu serve`` processes on two ports (two boxes, in effect), one redis-server, one PostgreSQL:
Chromium's guest issues its number through node A, the host redeems it through node B; video both ways and
the memo, a page turn and a file work whichever node is the room's home (acceptance 2 of issue 17). The
document is rendered by the node the host uploads through and its pages served to the guest by the other;
the file the host sends through node B is saved by the guest through node A."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.calls import decoding, meeting
from tests.harness.pdfs import text_pdf
from tests.harness.serve import Serve
from tests.helpers import PASSWORD
from tests.test_browser_documents import upload
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
    memo_page_and_file(host, guest)
    for page in (host, guest):
        page.context.close()


def memo_page_and_file(host: Any, guest: Any) -> None:
    """Both type in the memo and see each other's text, the host shows a document and turns to page 2 and the
    guest follows, the host sends a file and the guest saves it (whichever nodes their sockets are on)."""
    host_area, guest_area = host.locator("#memo-text"), guest.locator("#memo-text")
    host_area.click()
    host_area.press_sequentially("営業より", delay=20)
    guest_area.click()
    guest_area.press_sequentially("from the guest", delay=20)
    text = same_memo(host, guest)
    assert "営業より" in text and "from the guest" in text

    # A page turn: the host opens a document and turns to page 2; the guest follows.
    document_id = upload(host, "company.pdf", text_pdf(3))
    host.get_by_role("button", name="資料共有").click()
    host.locator(f'[data-document-id="{document_id}"]').click()
    host.locator("#viewer").wait_for()
    host.keyboard.press("ArrowRight")
    second = f"/documents/{document_id}/pages/2.jpg"
    for page in (host, guest):
        page.wait_for_function(
            "src => { const img = document.querySelector('[data-doc-slide] img');"
            " return img && img.getAttribute('src') === src && img.naturalWidth > 0; }",
            arg=second,
        )
    host.keyboard.press("Escape")
    guest.locator("#viewer").wait_for(state="hidden")

    # A file: sent by the host, saved by the guest.
    host.get_by_role("button", name="ファイル送信").click()
    quote = b"%PDF-1.4 quote across two nodes"
    host.locator("#files-input").set_input_files(
        files=[{"name": "見積書.pdf", "mimeType": "application/pdf", "buffer": quote}]
    )
    host.get_by_role("button", name="送信する", exact=True).click()
    prompt = guest.get_by_role("alertdialog")
    prompt.get_by_text("ファイルが届きました：見積書.pdf").wait_for()
    with guest.expect_download() as caught:
        prompt.get_by_role("button", name="保存する").click()
    download = caught.value
    assert download.suggested_filename == "見積書.pdf"
    assert Path(download.path()).read_bytes() == quote
