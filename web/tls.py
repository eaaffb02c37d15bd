"""TLS for ``tsunagu serve``: check a given certificate and key, or make a self-signed one for LAN trials.

Phones only give a page the camera in a secure context, and a phone on the LAN reaches the server by its
address, not as ``localhost``; so trying tsunagu on a phone needs HTTPS even before a real certificate
exists. The self-signed certificate lives under ``DATA_DIR/tls/`` and is reused while it is valid and covers
the names asked for, so the phone's warning (and the fingerprint people compare) stays the same across
restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CERT_NAME = "self-signed.crt"
KEY_NAME = "self-signed.key"
VALID_DAYS = 365
# Regenerate a little before expiry rather than hand a phone a certificate that lapses mid-meeting.
RENEW_BEFORE = dt.timedelta(days=7)
# Phones' clocks drift; a certificate that starts "in the future" is refused with a confusing error.
BACKDATE = dt.timedelta(hours=1)
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_ADDRESSES: tuple[IPAddress, ...] = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class TLSConfigError(Exception):
    """A certificate or key that cannot be served; the message is shown to the operator as is."""


@dataclass(frozen=True)
class SelfSigned:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex as browsers show it
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPAddress, ...]
    not_after: dt.datetime
    created: bool  # False when an earlier certificate was reused


def fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{byte:02X}" for byte in cert.fingerprint(hashes.SHA256()))


def lan_addresses() -> list[IPAddress]:
    """This machine's addresses a phone on the same network could reach (no loopback, no link-local).

    The UDP ``connect`` sends nothing; it only asks the kernel which source address would route outwards,
    which finds the LAN address even when the host name resolves to 127.0.1.1 (Debian's default).
    """
    found: list[IPAddress] = []
    probes = ((socket.AF_INET, "10.254.254.254"), (socket.AF_INET6, "fd00::1"))
    for family, target in probes:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                found.append(ipaddress.ip_address(s.getsockname()[0]))
        except OSError:
            continue  # no route of that family (e.g. a loopback-only namespace)
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except OSError:
        infos = []
    for info in infos:
        found.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
    unique: list[IPAddress] = []
    for address in found:
        if address.is_loopback or address.is_link_local or address.is_unspecified or address in unique:
            continue
        unique.append(address)
    return unique


def default_names(extra: Iterable[str] = ()) -> tuple[tuple[str, ...], tuple[IPAddress, ...]]:
    """The names a LAN trial needs: loopback, this machine's host name and addresses, and ``extra``."""
    dns: list[str] = [*LOOPBACK_NAMES]
    addresses: list[IPAddress] = [*LOOPBACK_ADDRESSES, *lan_addresses()]
    hostname = socket.gethostname()
    for name in (hostname, *extra):
        _add_name(name, dns, addresses)
    return tuple(dns), tuple(addresses)


def _add_name(name: str, dns: list[str], addresses: list[IPAddress]) -> None:
    name = name.strip().rstrip(".").lower()
    if not name:
        return
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if name not in dns:
            dns.append(name)
        return
    if address not in addresses:
        addresses.append(address)


def split_names(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[IPAddress, ...]]:
    """Sort names given by the operator into DNS names and IP addresses."""
    dns: list[str] = []
    addresses: list[IPAddress] = []
    for name in names:
        _add_name(name, dns, addresses)
    return tuple(dns), tuple(addresses)


def ensure_self_signed(
    directory: Path,
    dns_names: Iterable[str],
    ip_addresses: Iterable[IPAddress],
    *,
    now: dt.datetime | None = None,
) -> SelfSigned:
    """Reuse the certificate in ``directory`` when it is valid and covers every name; otherwise make one."""
    now = now or dt.datetime.now(dt.UTC)
    dns = tuple(dict.fromkeys(n.lower() for n in dns_names))
    ips = tuple(dict.fromkeys(ip_addresses))
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    existing = _load_reusable(cert_path, key_path, dns, ips, now)
    if existing is not None:
        return existing
    return _generate(cert_path, key_path, dns, ips, now)


def _load_reusable(
    cert_path: Path, key_path: Path, dns: tuple[str, ...], ips: tuple[IPAddress, ...], now: dt.datetime
) -> SelfSigned | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None  # missing, unreadable or half-written: make a new one
    # A crash between writing the key and the certificate would leave a pair that does not match.
    if key.public_key() != cert.public_key():
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE <= now or cert.not_valid_before_utc > now:
        return None
    have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    san_ips = [a for a in san.get_values_for_type(x509.IPAddress) if isinstance(a, IPAddress)]
    have_ips = set(san_ips)
    if not set(dns) <= have_dns or not set(ips) <= have_ips:
        return None  # a new name or a new LAN address: the phone would refuse the old certificate
    if key_path.stat().st_mode & 0o077:
        os.chmod(key_path, 0o600)
    return SelfSigned(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint=fingerprint(cert),
        dns_names=tuple(sorted(have_dns)),
        ip_addresses=tuple(san_ips),
        not_after=cert.not_valid_after_utc,
        created=False,
    )


def _generate(
    cert_path: Path, key_path: Path, dns: tuple[str, ...], ips: tuple[IPAddress, ...], now: dt.datetime
) -> SelfSigned:
    # P-256: small, fast to make, and accepted by every phone browser tsunagu supports.
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = (dns[0] if dns else str(ips[0]) if ips else "tsunagu")[:64]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tsunagu (self-signed)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    not_after = now + dt.timedelta(days=VALID_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([*(x509.DNSName(n) for n in dns), *(x509.IPAddress(a) for a in ips)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return SelfSigned(
        cert_path=cert_path,
        key_path=key_path,
        fingerprint=fingerprint(cert),
        dns_names=dns,
        ip_addresses=ips,
        not_after=not_after,
        created=True,
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write beside ``path`` and rename, so a reader never sees half a key; the mode is set at creation."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # the umask may have taken bits away from a public certificate
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_pair(cert_file: Path, key_file: Path | None) -> None:
    """Load the pair as the server will, so a wrong path or a mismatched key stops with a plain sentence."""
    for label, path in (("certificate", cert_file), ("key", key_file)):
        if path is None:
            continue
        if not path.exists():
            raise TLSConfigError(f"TLS {label} file not found: {path}")
        if not path.is_file():
            raise TLSConfigError(f"TLS {label} path is not a file: {path}")
        if not os.access(path, os.R_OK):
            raise TLSConfigError(f"TLS {label} file is not readable by this user: {path}")

    def refuse_password() -> bytes:
        # Without this OpenSSL would prompt on the terminal, and uvicorn is not given a password either.
        raise TLSConfigError(f"TLS key file is encrypted with a passphrase; give it unencrypted: {key_file}")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file, password=refuse_password)
    except ssl.SSLError as exc:
        if key_file is None:
            raise TLSConfigError(
                f"cannot use {cert_file} for TLS ({exc.reason or exc}): it must be PEM and hold the private "
                "key too, or give the key file (--keyfile / TLS_KEY_FILE)"
            ) from None
        raise TLSConfigError(
            f"cannot use {cert_file} and {key_file} for TLS ({exc.reason or exc}): the files must be PEM, "
            "and the key must belong to the certificate"
        ) from None
