from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.calls import decoding, meeting
from tests.harness.live import LiveServer

pytestmark = pytest.mark.browser


def test_vb(server: LiveServer, new_context: Callable[..., Any]) -> None:
    host, guest = meeting(new_context, server)
    responses: list[tuple[str, int]] = []
    host.on("response", lambda r: responses.append((r.url, r.status)))
    host.on("console", lambda m: print("CONSOLE", m.text))
    decoding(guest, within=10)
    print("webgl2", host.evaluate("!!document.createElement('canvas').getContext('webgl2')"))
    print("webgl", host.evaluate("!!document.createElement('canvas').getContext('webgl')"))
    host.get_by_role("button", name="カメラ設定").click()
    host.get_by_label("ぼかし").check()
    host.wait_for_function(
        "!document.getElementById('background-status').textContent.includes('準備')", timeout=30_000
    )
    print("STATUS", repr(host.locator("#background-status").inner_text()))
    host.wait_for_timeout(3000)
    print("MASK", host.evaluate("!!window.tsunaguMedia.camera.effects.mask"))
    for r in responses:
        print(r)
