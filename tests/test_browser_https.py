"""A phone on the LAN: the guest page at a name (not localhost) over HTTPS with the self-signed certificate
that ``tsunagu serve --self-signed`` makes, and video both ways (a phone gets the camera only over HTTPS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.calls import PHONE, decoding, meeting
from tests.harness.live import LiveServer
from tests.harness.tls import https_url

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.harness.tls"]


def test_phone_guest_over_https_at_a_lan_name_gets_video(
    https_server: LiveServer, new_context: Callable[..., Any]
) -> None:
    base = https_url(https_server, "").rstrip("/")
    host, guest = meeting(
        new_context, https_server, device=PHONE, guest_base=base, host_base=base, ignore_https_errors=True
    )
    assert guest.url.startswith(f"{base}/rooms/")
    assert guest.evaluate("window.isSecureContext")  # the camera is allowed: a secure context at a LAN name
    decoding(host, within=10)  # the phone's camera on the host page
    decoding(guest, within=10)  # the host's camera on the phone
    assert guest.evaluate("window.tsunaguMedia.camera.state") == "on"
