"""TLS over real sockets: a pinned client connects, a wrong pin never sends its request.

The server is a bare aiohttp application using `server_ssl_context`, so these tests show
what the gateway gets from the TLS module alone; the middleware records every HTTP
request that reaches it, which is how a test proves a credential never left the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clawgate.tls import (
    TlsMaterial,
    ensure_self_signed,
    load_material,
    normalize_fingerprint,
    pinned_client_context,
    server_ssl_context,
)

TOKEN = "tls-test-token"
AUTH_HEADERS = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE_S = 5


@dataclass
class TlsServer:
    """A running TLS WebSocket echo server and every request it received."""

    url: str
    material: TlsMaterial
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"echo:{message.data}")
    return ws


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


@contextlib.asynccontextmanager
async def serving(material: TlsMaterial) -> AsyncIterator[TlsServer]:
    """Serve `/` (WebSocket echo) and `/readyz` over TLS on an ephemeral loopback port."""
    server = TlsServer(url="", material=material)

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        server.requests.append((request.path, dict(request.headers)))
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_get("/", echo)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(material))
    await site.start()
    port = next(address[1] for address in runner.addresses if isinstance(address, tuple))
    server.url = f"wss://127.0.0.1:{port}/"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    async with serving(ensure_self_signed(tmp_path / "tls")) as server:
        yield server


async def exchange(url: str, ssl_option: ssl.SSLContext | aiohttp.Fingerprint | bool) -> str:
    """Connect with the token in the upgrade headers and first frame; return the reply."""
    async with (
        asyncio.timeout(DEADLINE_S),
        aiohttp.ClientSession() as session,
        session.ws_connect(url, ssl=ssl_option, headers=AUTH_HEADERS) as ws,
    ):
        await ws.send_str(f'{{"token":"{TOKEN}"}}')
        reply = await ws.receive_str()
        await ws.close()
        return reply


async def assert_only_sentinel_recorded(server: TlsServer) -> None:
    """Prove nothing but a later, pinned probe reached the server.

    The probe runs after the refused attempt, so if that attempt had sent its request the
    server would have recorded it before (or together with) the probe.
    """
    pin = aiohttp.Fingerprint(normalize_fingerprint(server.material.fingerprint))
    async with (
        asyncio.timeout(DEADLINE_S),
        aiohttp.ClientSession() as session,
        session.get(server.url.replace("wss://", "https://") + "probe", ssl=pin) as response,
    ):
        assert response.status == 404
    assert [path for path, _ in server.requests] == ["/probe"]
    assert all(TOKEN not in str(headers) for _, headers in server.requests)


async def test_pinned_client_exchanges_a_message(tls_server: TlsServer) -> None:
    pin = aiohttp.Fingerprint(normalize_fingerprint(tls_server.material.fingerprint))
    assert await exchange(tls_server.url, pin) == f'echo:{{"token":"{TOKEN}"}}'
    assert [path for path, _ in tls_server.requests] == ["/"]
    assert tls_server.requests[0][1]["Authorization"] == f"Bearer {TOKEN}"


async def test_wrong_pin_aborts_before_any_request_is_sent(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    other = ensure_self_signed(tmp_path / "other")
    wrong = normalize_fingerprint(other.fingerprint)
    with pytest.raises(aiohttp.ServerFingerprintMismatch) as caught:
        await exchange(tls_server.url, aiohttp.Fingerprint(wrong))
    # The TLS handshake completed (the client saw the real certificate) and then stopped.
    assert caught.value.expected == wrong
    assert caught.value.got == normalize_fingerprint(tls_server.material.fingerprint)
    await assert_only_sentinel_recorded(tls_server)


async def test_unpinned_client_fails_default_certificate_verification(
    tls_server: TlsServer,
) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await exchange(tls_server.url, True)
    await assert_only_sentinel_recorded(tls_server)


async def test_client_trusting_the_cert_verifies_its_ip_san(tls_server: TlsServer) -> None:
    context = ssl.create_default_context(cafile=tls_server.material.cert_path)
    # Python 3.13 turns this on by default; the certificate must pass it too.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    assert await exchange(tls_server.url, context) == f'echo:{{"token":"{TOKEN}"}}'


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_server_refuses_tls_below_1_2(tls_server: TlsServer) -> None:
    context = ssl.create_default_context(cafile=tls_server.material.cert_path)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    # Let the client offer the old versions, so only the server's minimum can refuse them.
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(aiohttp.ClientConnectorError):
        await exchange(tls_server.url, context)
    assert tls_server.requests == []


# -- the stdlib probe context ----------------------------------------------------------


def https_get(url: str, context: ssl.SSLContext) -> bytes:
    with urllib.request.urlopen(url, timeout=DEADLINE_S, context=context) as response:
        body: bytes = response.read()
        return body


def readyz_url(server: TlsServer) -> str:
    return server.url.replace("wss://", "https://") + "readyz"


async def test_pinned_probe_reads_readyz_over_https(tls_server: TlsServer) -> None:
    context = pinned_client_context(tls_server.material)
    body = await asyncio.to_thread(https_get, readyz_url(tls_server), context)
    assert body == b'{"ready": true}'


async def test_pinned_probe_refuses_another_certificate(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    context = pinned_client_context(ensure_self_signed(tmp_path / "other"))
    with pytest.raises(urllib.error.URLError) as caught:
        await asyncio.to_thread(https_get, readyz_url(tls_server), context)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)
    assert tls_server.requests == []


def write_ca_signed_pair(directory: Path) -> tuple[Path, Path]:
    """Write a leaf for gw.example.com (no IP names) issued by a throwaway CA; return paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def builder(subject: str, issuer: str, public_key: ec.EllipticCurvePublicKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("test CA", "test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        builder("gw.example.com", "test CA", leaf_key.public_key())
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("gw.example.com")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "chain.pem", directory / "leaf.key"
    pem = serialization.Encoding.PEM
    cert_path.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_pinned_probe_accepts_a_ca_issued_leaf_on_loopback(tmp_path: Path) -> None:
    material = load_material(*write_ca_signed_pair(tmp_path))
    async with serving(material) as server:
        context = pinned_client_context(material)
        body = await asyncio.to_thread(https_get, readyz_url(server), context)
    assert body == b'{"ready": true}'
