"""TLS material: self-signed generation, loading, fingerprints, the server context."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from clawgate.tls import (
    CERT_FILE,
    KEY_FILE,
    TlsError,
    TlsMaterial,
    ensure_self_signed,
    fingerprint_of_der,
    format_fingerprint,
    load_material,
    normalize_fingerprint,
    pinned_client_context,
    server_ssl_context,
)

# 2026-01-01T00:00:00Z, so validity dates are exact.
NOW = 1_767_225_600.0
DIGEST = bytes(range(32))
HEX = DIGEST.hex()
PAIRS = ":".join(f"{b:02x}" for b in DIGEST)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert_of(material: TlsMaterial) -> x509.Certificate:
    return x509.load_pem_x509_certificate(material.cert_path.read_bytes())


@pytest.fixture
def material(tmp_path: Path) -> TlsMaterial:
    return ensure_self_signed(tmp_path / "tls", clock=lambda: NOW)


# -- generation ------------------------------------------------------------------------


def test_generation_writes_key_0600_and_cert_0644_in_0700_dir(tmp_path: Path) -> None:
    tls_dir = tmp_path / "home" / "tls"
    old_umask = os.umask(0o022)
    try:
        material = ensure_self_signed(tls_dir, clock=lambda: NOW)
    finally:
        os.umask(old_umask)
    assert material.cert_path == tls_dir / CERT_FILE
    assert material.key_path == tls_dir / KEY_FILE
    assert mode_of(tls_dir) == 0o700
    assert mode_of(material.key_path) == 0o600
    assert mode_of(material.cert_path) == 0o644


def test_generation_tightens_an_existing_loose_dir(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir(mode=0o755)
    os.chmod(tls_dir, 0o755)
    ensure_self_signed(tls_dir, clock=lambda: NOW)
    assert mode_of(tls_dir) == 0o700


def test_generation_leaves_no_temp_files(material: TlsMaterial) -> None:
    assert sorted(p.name for p in material.cert_path.parent.iterdir()) == [CERT_FILE, KEY_FILE]


def test_generated_key_is_ec_p256(material: TlsMaterial) -> None:
    public_key = cert_of(material).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"


def test_generated_cert_is_valid_for_ten_years_from_the_clock(material: TlsMaterial) -> None:
    cert = cert_of(material)
    start = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    assert cert.not_valid_before_utc <= start
    assert cert.not_valid_after_utc == start + datetime.timedelta(days=3650)


def test_generated_cert_is_self_signed_leaf(material: TlsMaterial) -> None:
    cert = cert_of(material)
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_san_contains_default_loopback_names(material: TlsMaterial) -> None:
    san = cert_of(material).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_san_lists_given_hostnames_and_ips(tmp_path: Path) -> None:
    material = ensure_self_signed(
        tmp_path / "tls", hostnames=("gw.lan", "localhost"), ips=("192.168.1.5",)
    )
    san = cert_of(material).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.lan", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.1.5")]


def test_invalid_ip_is_rejected_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ensure_self_signed(tmp_path / "tls", ips=("not-an-ip",))
    assert not (tmp_path / "tls").exists()


# -- reuse -----------------------------------------------------------------------------


def test_second_call_returns_the_same_pair_without_regenerating(
    tmp_path: Path, material: TlsMaterial
) -> None:
    cert_bytes = material.cert_path.read_bytes()
    key_bytes = material.key_path.read_bytes()
    again = ensure_self_signed(tmp_path / "tls", clock=lambda: NOW + 86_400)
    assert again == material
    assert material.cert_path.read_bytes() == cert_bytes
    assert material.key_path.read_bytes() == key_bytes


def test_half_a_pair_is_replaced_by_a_new_pair(tmp_path: Path, material: TlsMaterial) -> None:
    material.cert_path.unlink()
    again = ensure_self_signed(tmp_path / "tls", clock=lambda: NOW)
    assert again.fingerprint != material.fingerprint
    assert load_material(again.cert_path, again.key_path) == again


def test_broken_existing_pair_is_an_error_not_regenerated(
    tmp_path: Path, material: TlsMaterial
) -> None:
    material.key_path.write_bytes(ensure_self_signed(tmp_path / "other").key_path.read_bytes())
    with pytest.raises(TlsError):
        ensure_self_signed(tmp_path / "tls")
    assert fingerprint_of_der(cert_der(material.cert_path)) == material.fingerprint


# -- fingerprints ----------------------------------------------------------------------


def cert_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_fingerprint_is_sha256_of_the_cert_der(material: TlsMaterial) -> None:
    expected = hashlib.sha256(cert_der(material.cert_path)).hexdigest()
    assert material.fingerprint.replace(":", "") == expected


def test_fingerprint_format_is_lowercase_colon_pairs() -> None:
    assert fingerprint_of_der(b"") == (
        "e3:b0:c4:42:98:fc:1c:14:9a:fb:f4:c8:99:6f:b9:24:"
        "27:ae:41:e4:64:9b:93:4c:a4:95:99:1b:78:52:b8:55"
    )


def test_format_fingerprint_inverts_normalize() -> None:
    assert format_fingerprint(DIGEST) == PAIRS
    assert normalize_fingerprint(format_fingerprint(DIGEST)) == DIGEST


def test_load_material_matches_generated_fingerprint(material: TlsMaterial) -> None:
    assert load_material(material.cert_path, material.key_path) == material


def test_load_material_fingerprints_the_leaf_of_a_chain(
    tmp_path: Path, material: TlsMaterial
) -> None:
    other = ensure_self_signed(tmp_path / "other")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(material.cert_path.read_bytes() + other.cert_path.read_bytes())
    assert load_material(chain, material.key_path).fingerprint == material.fingerprint


@pytest.mark.parametrize(
    "text",
    [HEX, HEX.upper(), PAIRS, PAIRS.upper(), f"  {PAIRS}\n", PAIRS[:10].upper() + PAIRS[10:]],
)
def test_normalize_fingerprint_accepts_hex_with_or_without_colons(text: str) -> None:
    assert normalize_fingerprint(text) == DIGEST


@pytest.mark.parametrize(
    "text",
    [
        "",
        HEX[:-2],  # 31 bytes
        HEX + "00",  # 33 bytes
        HEX[:-1] + "g",
        PAIRS.replace(":", "-"),
        PAIRS[:5] + PAIRS[6:],  # one colon missing
        "sha1:" + HEX,
        ":" + PAIRS,
    ],
)
def test_normalize_fingerprint_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="SHA-256 fingerprint"):
        normalize_fingerprint(text)


def test_normalize_fingerprint_round_trips_the_displayed_form(material: TlsMaterial) -> None:
    digest = normalize_fingerprint(material.fingerprint)
    assert digest == hashlib.sha256(cert_der(material.cert_path)).digest()


# -- load errors -----------------------------------------------------------------------


def test_mismatched_key_names_the_key_file(tmp_path: Path, material: TlsMaterial) -> None:
    other = ensure_self_signed(tmp_path / "other")
    with pytest.raises(TlsError, match="does not match") as caught:
        load_material(material.cert_path, other.key_path)
    assert caught.value.path == other.key_path
    assert str(other.key_path) in str(caught.value)


def test_missing_cert_names_the_cert_file(tmp_path: Path, material: TlsMaterial) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(TlsError, match="does not exist") as caught:
        load_material(missing, material.key_path)
    assert caught.value.path == missing
    assert str(missing) in str(caught.value)


def test_missing_key_names_the_key_file(tmp_path: Path, material: TlsMaterial) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(TlsError, match="does not exist") as caught:
        load_material(material.cert_path, missing)
    assert caught.value.path == missing


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_key_names_the_key_file(material: TlsMaterial) -> None:
    os.chmod(material.key_path, 0o000)
    with pytest.raises(TlsError, match="cannot read") as caught:
        load_material(material.cert_path, material.key_path)
    assert caught.value.path == material.key_path


def test_unreadable_path_names_the_file(material: TlsMaterial) -> None:
    below_a_file = material.cert_path / "gateway.crt"
    with pytest.raises(TlsError, match="cannot read the certificate") as caught:
        load_material(below_a_file, material.key_path)
    assert caught.value.path == below_a_file


def test_directory_as_cert_names_it(tmp_path: Path, material: TlsMaterial) -> None:
    with pytest.raises(TlsError, match="is a directory") as caught:
        load_material(tmp_path, material.key_path)
    assert caught.value.path == tmp_path


def test_non_pem_cert_names_the_cert_file(tmp_path: Path, material: TlsMaterial) -> None:
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("hello\n")
    with pytest.raises(TlsError, match="not a PEM certificate") as caught:
        load_material(bogus, material.key_path)
    assert caught.value.path == bogus


def test_corrupt_cert_block_names_the_cert_file(tmp_path: Path, material: TlsMaterial) -> None:
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsError, match="invalid certificate") as caught:
        load_material(bogus, material.key_path)
    assert caught.value.path == bogus


def test_cert_given_as_key_names_the_key_file(material: TlsMaterial) -> None:
    with pytest.raises(TlsError, match="not a PEM private key") as caught:
        load_material(material.cert_path, material.cert_path)
    assert caught.value.path == material.cert_path


def test_encrypted_key_is_refused_without_prompting(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    material = ensure_self_signed(tmp_path / "tls")
    key = serialization.load_pem_private_key(material.key_path.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsError, match="encrypted") as caught:
        load_material(material.cert_path, encrypted)
    assert caught.value.path == encrypted


# -- server context --------------------------------------------------------------------


def test_server_context_requires_tls_12_or_later(material: TlsMaterial) -> None:
    context = server_ssl_context(material)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.protocol is ssl.PROTOCOL_TLS_SERVER


def test_server_context_fails_with_tls_error_when_files_changed(
    tmp_path: Path, material: TlsMaterial
) -> None:
    other = ensure_self_signed(tmp_path / "other")
    material.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(TlsError, match="does not match"):
        server_ssl_context(material)


def test_loading_a_pair_does_not_import_cryptography(material: TlsMaterial) -> None:
    # The gateway loads the pair at every start; cryptography would cost it several MB.
    script = (
        "import sys; from pathlib import Path; from clawgate import tls; "
        f"m = tls.load_material(Path({str(material.cert_path)!r}), "
        f"Path({str(material.key_path)!r})); tls.server_ssl_context(m); "
        "print(m.fingerprint, 'cryptography' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [material.fingerprint, "False"]


def test_pinned_client_context_checks_the_certificate_not_the_host_name(
    material: TlsMaterial,
) -> None:
    context = pinned_client_context(material)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is False
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_pinned_client_context_refuses_a_cert_replaced_since_loading(
    tmp_path: Path, material: TlsMaterial
) -> None:
    other = ensure_self_signed(tmp_path / "other")
    material.cert_path.write_bytes(other.cert_path.read_bytes())
    with pytest.raises(TlsError, match="changed since it was loaded") as caught:
        pinned_client_context(material)
    assert caught.value.path == material.cert_path


def test_tls_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "tls"
    blocker.write_text("")
    with pytest.raises(TlsError) as caught:
        ensure_self_signed(blocker)
    assert caught.value.path == blocker
