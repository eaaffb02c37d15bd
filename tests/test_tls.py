"""HTTPS served by tsunagu itself: the self-signed LAN certificate, ``serve --self-signed``, bad files."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.harness.live import LiveServer
from tests.harness.ports import free_port, wait_for_port
from tests.harness.tls import https_url, loopback_certificate, verifying_context
from tests.helpers import PASSWORD, csrf_from
from web import tls
from web.cli import main
from web.settings import Settings

pytest_plugins = ["tests.harness.tls"]

LOOPBACK = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def _sans(cert_path: Path) -> tuple[set[str], set[object]]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def _sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def test_self_signed_covers_the_names_and_keeps_the_key_private(tmp_path: Path) -> None:
    lan = ipaddress.ip_address("192.0.2.7")
    made = tls.ensure_self_signed(tmp_path / "tls", ["localhost", "tsunagu.test"], [*LOOPBACK, lan])
    assert made.created
    dns, ips = _sans(made.cert_path)
    assert dns == {"localhost", "tsunagu.test"} and ips == {*LOOPBACK, lan}
    assert made.key_path.stat().st_mode & 0o777 == 0o600
    assert made.fingerprint == _sha256(made.cert_path)
    cert = x509.load_pem_x509_certificate(made.cert_path.read_bytes())
    key = serialization.load_pem_private_key(made.key_path.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert cert.not_valid_before_utc < dt.datetime.now(dt.UTC) < cert.not_valid_after_utc
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_self_signed_is_reused_while_valid_and_covering_and_replaced_otherwise(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    first = tls.ensure_self_signed(directory, ["localhost"], LOOPBACK)
    again = tls.ensure_self_signed(directory, ["localhost"], LOOPBACK[:1])  # fewer names: still covered
    assert not again.created and again.fingerprint == first.fingerprint

    # A name it does not cover (a new --tls-name, or the LAN address changed): a new certificate.
    named = tls.ensure_self_signed(directory, ["localhost", "tsunagu.test"], LOOPBACK)
    assert named.created and named.fingerprint != first.fingerprint
    assert "tsunagu.test" in _sans(named.cert_path)[0]

    # Close to expiry: renewed before a phone meets an expired certificate.
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=tls.VALID_DAYS - 3)
    renewed = tls.ensure_self_signed(directory, ["localhost"], LOOPBACK, now=late)
    assert renewed.created and renewed.fingerprint != named.fingerprint

    # A key that does not belong to the certificate (a crash between the two writes) is not served.
    other = tls.ensure_self_signed(tmp_path / "other", ["localhost"], LOOPBACK, now=late)
    renewed.key_path.write_bytes(other.key_path.read_bytes())
    fixed = tls.ensure_self_signed(directory, ["localhost"], LOOPBACK, now=late)
    assert fixed.created
    assert fixed.key_path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_default_names_cover_loopback_host_name_lan_and_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "lan_addresses", lambda: [ipaddress.ip_address("192.0.2.9")])
    monkeypatch.setattr(socket, "gethostname", lambda: "Sales-PC")
    dns, ips = tls.default_names(["tsunagu.test", "10.0.0.5", " "])
    assert dns == ("localhost", "sales-pc", "tsunagu.test")
    assert set(ips) == {*LOOPBACK, ipaddress.ip_address("192.0.2.9"), ipaddress.ip_address("10.0.0.5")}
    assert all(not a.is_loopback for a in tls.lan_addresses())


def test_tls_settings_and_secure_cookies(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "SECRET_KEY": "k"}
    plain = Settings.from_env(env, dotenv=tmp_path / "none")
    assert not plain.serves_tls and not plain.secure_cookies
    assert Settings.from_env({**env, "PUBLIC_URL": "https://meet.example.jp"}).secure_cookies
    given = Settings.from_env({**env, "TLS_CERT_FILE": "/c.pem", "TLS_KEY_FILE": "/k.pem"})
    assert given.tls_cert_file == Path("/c.pem") and given.tls_key_file == Path("/k.pem")
    assert given.serves_tls and given.secure_cookies
    lan = Settings.from_env({**env, "TLS_SELF_SIGNED": "true", "TLS_NAMES": "tsunagu.test, 10.0.0.5"})
    assert lan.tls_self_signed and lan.secure_cookies and lan.tls_names == ("tsunagu.test", "10.0.0.5")


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SECRET_KEY", "PUBLIC_URL", "TLS_CERT_FILE", "TLS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TLS_SELF_SIGNED", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    assert main(["db", "upgrade"]) == 0
    return {**os.environ, "LOG_FORMAT": "json"}


def test_serve_self_signed_answers_https_with_secure_cookie(tmp_path: Path, data_env: dict[str, str]) -> None:
    port = free_port()
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--self-signed", "--port", str(port)]
            + ["--host", "127.0.0.1", "--tls-name", "tsunagu.test"],
            env=data_env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            wait_for_port(port)
            cert = tmp_path / "var" / "tls" / tls.CERT_NAME
            # Verified against the generated certificate, by address and by the name given with --tls-name.
            # One client per name: httpx pools connections by address, which would skip the second handshake.
            url = f"https://127.0.0.1:{port}/"
            with httpx.Client(verify=verifying_context(cert)) as client:
                response = client.get(f"{url}login")
            with httpx.Client(verify=verifying_context(cert)) as client:
                by_name = client.get(url, extensions={"sni_hostname": "tsunagu.test"})
            with httpx.Client(verify=verifying_context(cert)) as client, pytest.raises(httpx.ConnectError):
                client.get(url, extensions={"sni_hostname": "elsewhere.test"})
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert response.status_code == 200 and by_name.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("tsunagu_session=") and "; secure" in cookie and "httponly" in cookie
    printed = out.read_text()
    assert f"https://127.0.0.1:{port}/login" in printed
    assert f"SHA-256 fingerprint: {_sha256(cert)}" in printed
    assert "tsunagu.test" in printed and "add --host 0.0.0.0" in printed  # loopback only: no phone URL
    assert (cert.parent / tls.KEY_NAME).stat().st_mode & 0o777 == 0o600


def test_bad_certificate_or_key_paths_stop_with_a_clear_message(
    tmp_path: Path, data_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    made = loopback_certificate(tmp_path / "tls")
    other = tls.ensure_self_signed(tmp_path / "other", ["localhost"], LOOPBACK)
    missing = tmp_path / "missing.key"
    cert, key = str(made.cert_path), str(made.key_path)
    cases = [
        (["--certfile", cert, "--keyfile", str(missing)], f"TLS key file not found: {missing}"),
        (["--certfile", str(tmp_path / "no.crt"), "--keyfile", key], "certificate file not found"),
        (["--certfile", cert, "--keyfile", str(tmp_path)], "path is not a file"),
        (["--certfile", cert, "--keyfile", str(other.key_path)], "key must belong"),
        (["--keyfile", str(made.key_path)], "without a certificate"),
        (["--self-signed", "--certfile", cert], "either a certificate"),
        (["--certfile", cert], "hold the private key too"),
    ]
    for options, message in cases:
        assert main(["serve", "--port", str(free_port()), *options]) == 1, options
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (options, err)

    # The same from the environment, in a real process: one line on stderr, no traceback.
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(free_port())],
        env={**data_env, "TLS_CERT_FILE": str(made.cert_path), "TLS_KEY_FILE": str(missing)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: TLS key file not found: {missing}"


def test_https_server_fixture_serves_tsunagu_test_with_secure_cookies(https_server: LiveServer) -> None:
    cert = https_server.tls[0] if https_server.tls else None
    assert (
        cert is not None
        and https_url(https_server, "/login") == f"https://tsunagu.test:{https_server.port}/login"
    )
    name = {"sni_hostname": "tsunagu.test"}
    with httpx.Client(base_url=https_server.url, verify=verifying_context(cert)) as client:
        page = client.get("/login", extensions=name)
        assert "; secure" in page.headers["set-cookie"].lower()
        signed_in = client.post(
            "/login",
            data={"email": "host@acme.example", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
            extensions=name,
        )
        assert signed_in.status_code == 303, signed_in.text
        assert client.get("/host", extensions=name).status_code == 200
