"""TLS for the gateway port: certificate material, its fingerprint, the server context.

The SHA-256 fingerprint of the leaf certificate's DER is the pin clients check
(`--tls-fingerprint`) before they send any credential. Two invariants follow:

* An existing certificate/key pair is never replaced silently: a new certificate has a
  new fingerprint and every pinned client would refuse the gateway. A broken pair is an
  error the user resolves (fix the files, or delete the directory to get a new pair).
* Loading a pair uses only the stdlib `ssl` module. `cryptography` is imported only to
  generate the self-signed pair on first use, because its OpenSSL bindings cost the
  gateway several MB of resident memory for the life of the process.

Exceptions: everything that goes wrong with files or their content raises `TlsError`,
whose message names the offending path; `normalize_fingerprint` raises `ValueError`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from .files import write_atomic

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "TlsError",
    "TlsMaterial",
    "ensure_self_signed",
    "fingerprint_of_der",
    "format_fingerprint",
    "load_material",
    "normalize_fingerprint",
    "pinned_client_context",
    "server_ssl_context",
]

logger = logging.getLogger(__name__)

CERT_FILE: Final = "gateway.crt"
KEY_FILE: Final = "gateway.key"

_VALIDITY: Final = datetime.timedelta(days=3650)
# Back-date the start a little so a client whose clock runs behind accepts a fresh cert.
_CLOCK_SKEW: Final = datetime.timedelta(minutes=5)
_SUBJECT_NAME: Final = "clawgate gateway"

_PEM_CERT: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)
_PEM_KEY: Final = re.compile(rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?)PRIVATE KEY-----")
_HEX_PAIRS: Final = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){31}")
_HEX_PLAIN: Final = re.compile(r"[0-9a-f]{64}")


class TlsError(Exception):
    """A certificate or key cannot be used; the message names the file and the fix."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """A certificate chain and its key on disk, with the leaf's SHA-256 fingerprint."""

    cert_path: Path
    key_path: Path
    fingerprint: str


def format_fingerprint(digest: bytes) -> str:
    """Return a digest as lowercase hex pairs joined by ':', the form people compare."""
    return ":".join(f"{byte:02x}" for byte in digest)


def fingerprint_of_der(der: bytes) -> str:
    """Return the SHA-256 of a DER certificate as lowercase hex pairs joined by ':'."""
    return format_fingerprint(hashlib.sha256(der).digest())


def normalize_fingerprint(text: str) -> bytes:
    """Parse a SHA-256 fingerprint typed by a person into its 32 raw bytes.

    Args:
        text: 64 hex digits, either contiguous or as 32 pairs joined by ':'; any case,
            surrounding whitespace ignored.

    Returns:
        The digest, e.g. for `aiohttp.Fingerprint`.

    Raises:
        ValueError: the text is not a SHA-256 fingerprint in one of those forms.
    """
    cleaned = text.strip().lower()
    if not (_HEX_PAIRS.fullmatch(cleaned) or _HEX_PLAIN.fullmatch(cleaned)):
        raise ValueError(
            f"not a SHA-256 fingerprint: {text!r}; expected 64 hex digits, "
            "optionally as pairs joined by ':' (as `clawgate status` shows it)"
        )
    return bytes.fromhex(cleaned.replace(":", ""))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsError(path, f"{what} file does not exist") from None
    except IsADirectoryError:
        raise TlsError(path, f"is a directory, not a {what} file") from None
    except OSError as exc:
        raise TlsError(path, f"cannot read the {what}: {exc.strerror or exc}") from None


def _certificate_ders(cert_path: Path, pem: bytes) -> list[bytes]:
    """Return the DER of every certificate in a PEM file, leaf first."""
    ders = []
    for match in _PEM_CERT.finditer(pem):
        try:
            ders.append(base64.b64decode(match.group(1), validate=False))
        except binascii.Error:
            raise TlsError(cert_path, "holds a corrupt PEM certificate block") from None
    if not ders:
        raise TlsError(cert_path, "is not a PEM certificate (no BEGIN CERTIFICATE block)")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=b"".join(ders))
    except ssl.SSLError as exc:
        raise TlsError(cert_path, f"holds an invalid certificate ({exc.reason or exc})") from None
    return ders


def _check_key_pem(key_path: Path, pem: bytes) -> None:
    match = _PEM_KEY.search(pem)
    if match is None:
        raise TlsError(key_path, "is not a PEM private key (no BEGIN PRIVATE KEY block)")
    if match.group(1) == b"ENCRYPTED " or b"Proc-Type: 4,ENCRYPTED" in pem:
        raise TlsError(key_path, "is encrypted; clawgate needs a key without a passphrase")


def _refuse_password() -> NoReturn:
    # Without a callback, OpenSSL would prompt on the terminal and hang a daemon.
    raise ssl.SSLError("the key is encrypted")


def _load_chain(context: ssl.SSLContext, cert_path: Path, key_path: Path) -> None:
    """Load the pair into `context`, mapping OpenSSL's terse errors to the file at fault."""
    try:
        context.load_cert_chain(cert_path, key_path, password=_refuse_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(key_path, f"key does not match the certificate {cert_path}") from None
        raise TlsError(key_path, f"cannot use the key ({exc.reason or exc})") from None
    except OSError as exc:  # a file vanished or changed mode after it was read
        raise TlsError(cert_path, f"cannot load: {exc.strerror or exc}") from None


def load_material(cert_path: Path, key_path: Path) -> TlsMaterial:
    """Check a PEM certificate chain and its key, and return them with the fingerprint.

    Args:
        cert_path: PEM file holding the leaf certificate first, then any intermediates.
        key_path: PEM file holding the unencrypted private key of the leaf.

    Returns:
        The material, fingerprinted from the leaf certificate.

    Raises:
        TlsError: a file is missing, unreadable, not PEM, encrypted, or the key does not
            belong to the certificate; the message names the file.
    """
    ders = _certificate_ders(cert_path, _read(cert_path, "certificate"))
    _check_key_pem(key_path, _read(key_path, "key"))
    _load_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_path, key_path)
    return TlsMaterial(cert_path, key_path, fingerprint_of_der(ders[0]))


def server_ssl_context(material: TlsMaterial) -> ssl.SSLContext:
    """Return a server-side context (TLS 1.2 or later) serving the material's chain.

    Raises:
        TlsError: the files no longer load, e.g. they changed since `load_material`.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, material.cert_path, material.key_path)
    return context


def pinned_client_context(material: TlsMaterial) -> ssl.SSLContext:
    """Return a client context that trusts this leaf certificate and nothing else.

    For the CLI's stdlib (`urllib`) probes of the local gateway, where `aiohttp.Fingerprint`
    is not available. The certificate is the identity, so host names are not checked;
    only a server holding the leaf's key completes the handshake.

    Raises:
        TlsError: the certificate file is unreadable or no longer has the fingerprint.
    """
    leaf = _certificate_ders(material.cert_path, _read(material.cert_path, "certificate"))[0]
    if fingerprint_of_der(leaf) != material.fingerprint:
        raise TlsError(material.cert_path, "changed since it was loaded; restart the gateway")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    # The leaf is the trust anchor even when a CA issued it: the pin, not the CA, decides.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=leaf)
    return context


def _ensure_private_dir(tls_dir: Path) -> None:
    try:
        tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = tls_dir.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise TlsError(tls_dir, "is not a directory")
        if stat.S_IMODE(info.st_mode) != 0o700:  # mkdir's mode is filtered by the umask
            os.chmod(tls_dir, 0o700)
    except OSError as exc:
        raise TlsError(tls_dir, f"cannot create the directory: {exc.strerror or exc}") from None


def _generate(
    hostnames: Sequence[str],
    ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    now: float,
) -> tuple[bytes, bytes, bytes]:
    """Return a new EC P-256 key (PEM) and a self-signed certificate for it (PEM, DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _SUBJECT_NAME)])
    start = datetime.datetime.fromtimestamp(now, datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(host) for host in hostnames]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    subject_key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _CLOCK_SKEW)
        .not_valid_after(start + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
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
        .add_extension(subject_key_id, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(subject_key_id),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return key_pem, cert_pem, cert.public_bytes(serialization.Encoding.DER)


def ensure_self_signed(
    tls_dir: Path,
    *,
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1", "::1"),
    clock: Callable[[], float] = time.time,
) -> TlsMaterial:
    """Return the self-signed pair in `tls_dir`, generating it on first use.

    An existing `gateway.crt` + `gateway.key` is loaded, never regenerated, so the
    fingerprint clients pinned stays valid. A new pair is an EC P-256 key (mode 0600) and
    a certificate valid for ten years (mode 0644) naming `hostnames` and `ips` in its
    SubjectAltName, written atomically into a 0700 directory.

    Args:
        tls_dir: Directory holding the pair, created if missing.
        hostnames: DNS names the certificate is valid for.
        ips: IP addresses the certificate is valid for.
        clock: Current time in Unix seconds; the validity period starts from it.

    Returns:
        The material, loaded or newly generated.

    Raises:
        TlsError: the existing pair is unusable, or the directory cannot be written.
        ValueError: an entry of `ips` is not an IP address.
    """
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    cert_path, key_path = tls_dir / CERT_FILE, tls_dir / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return load_material(cert_path, key_path)
    _ensure_private_dir(tls_dir)
    if cert_path.exists() or key_path.exists():
        # Half a pair is what a crash between the two writes leaves; nothing can use it.
        logger.warning("replacing the incomplete self-signed TLS pair in %s", tls_dir)
    key_pem, cert_pem, cert_der = _generate(hostnames, addresses, clock())
    # The key goes first: a certificate on disk means its key is already there.
    try:
        write_atomic(key_path, key_pem)
        write_atomic(cert_path, cert_pem, mode=0o644)
    except OSError as exc:
        raise TlsError(tls_dir, f"cannot write the TLS pair: {exc.strerror or exc}") from None
    material = TlsMaterial(cert_path, key_path, fingerprint_of_der(cert_der))
    logger.info(
        "generated a self-signed TLS certificate %s (SHA-256 %s)", cert_path, material.fingerprint
    )
    return material
