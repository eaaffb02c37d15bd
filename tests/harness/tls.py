"""HTTPS for tests: a self-signed certificate that covers ``tsunagu.test``, and the live server serving it.

A phone opens the server by a LAN name or address, where only HTTPS gives a page the camera; browser tests
reach that situation through ``tsunagu.test`` (Chromium maps it to 127.0.0.1, see ``browser.py``). To use the
fixture from a test module::

    pytest_plugins = ["tests.harness.tls"]

    def test_camera_over_https(https_server: LiveServer, new_context: Callable[..., Any]) -> None:
        page = new_context(device="Pixel 7", ignore_https_errors=True).new_page()
        page.goto(https_url(https_server, "/"))

``https_server`` is the ``server`` fixture over HTTPS: org "acme" with host@acme.example, session cookies
``Secure``. ``https_server.tls[0]`` is the certificate, for ``httpx.Client(verify=verifying_context(...))``.

PYTEST_DONT_REWRITE: test modules import helpers from here before ``pytest_plugins`` registers it, and
pytest would otherwise warn (an error under this suite's filterwarnings) that it cannot rewrite its asserts.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.clock import ManualClock
from store.models import Role
from tests.harness.browser import TEST_HOSTNAME
from tests.harness.live import LiveServer
from tests.helpers import seed_org
from web.app import create_app
from web.settings import Settings
from web.tls import LOOPBACK_ADDRESSES, SelfSigned, ensure_self_signed


def loopback_certificate(directory: Path) -> SelfSigned:
    """A certificate for loopback and ``tsunagu.test`` only: tests never depend on the machine's LAN."""
    return ensure_self_signed(directory, ("localhost", TEST_HOSTNAME), LOOPBACK_ADDRESSES)


def https_url(server: LiveServer, path: str = "/") -> str:
    """The address a browser opens: by name, as a phone on the LAN would, rather than as loopback."""
    return f"https://{TEST_HOSTNAME}:{server.port}{path}"


def verifying_context(cert: Path) -> ssl.SSLContext:
    """Trust exactly the test certificate (hostname checks stay on), for httpx's ``verify``."""
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def https_server(settings: Settings, clock: ManualClock) -> Iterator[LiveServer]:
    made = loopback_certificate(settings.data_dir / "tls")
    tls_settings = replace(settings, tls_cert_file=made.cert_path, tls_key_file=made.key_path)
    server = LiveServer(create_app(tls_settings, clock=clock), tls=(made.cert_path, made.key_path))
    server.start()
    server.call(seed_org(server.app, "acme", {"host@acme.example": Role.HOST}))
    yield server
    server.stop()
