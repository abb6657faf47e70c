"""A gateway with `[gateway.tls]` on: self-signed pair, printed fingerprint, pinned CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import free_port, run_cli


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(f"[gateway]\nport = {free_port()}\n\n[gateway.tls]\nenabled = true\n")
    config.chmod(0o600)
    yield home
    run_cli(home, "gateway", "stop")


def test_tls_gateway_with_pinned_clients(home: Path) -> None:
    started = run_cli(home, "gateway", "start")
    assert started.returncode == 0, started.stderr + started.stdout
    assert "wss://127.0.0.1:" in started.stdout
    fingerprint = started.stdout.split("TLS fingerprint (SHA-256): ")[1].split()[0]
    assert len(fingerprint) == 95  # 32 bytes as colon-separated hex pairs
    assert (home / "tls" / "gateway.key").stat().st_mode & 0o077 == 0

    # Local CLI pins the home's own certificate without being told.
    assert run_cli(home, "call", "health").returncode == 0
    assert fingerprint in run_cli(home, "status", COLUMNS="200").stdout
    report = json.loads(run_cli(home, "gateway", "status", "--json").stdout)
    assert report["tls"]["fingerprint"] == fingerprint and report["ready"] is True

    url = report["url"]
    pinned = run_cli(home, "call", "health", "--url", url, "--tls-fingerprint", fingerprint)
    assert pinned.returncode == 0, pinned.stderr
    wrong = run_cli(home, "call", "health", "--url", url, "--tls-fingerprint", "00" * 32)
    assert wrong.returncode == 2
    assert "fingerprint" in wrong.stderr and "nothing was sent" in wrong.stderr
    doctor = json.loads(run_cli(home, "doctor", "--json").stdout)
    assert {c["name"]: c["status"] for c in doctor}["gateway"] == "ok"


def test_tables_never_turn_hex_pairs_into_emoji() -> None:
    """Rich reads `:cd:` as an emoji code; fingerprints are full of such pairs."""
    from clawgate.cli._common import console

    with console.capture() as captured:
        console.print("ab:cd:ef")
    assert captured.get().strip() == "ab:cd:ef"
