"""`clawgate devices …` against a real background gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clawgate.protocol.device_auth import DeviceIdentity
from tests.e2e.test_cli import free_port, run_cli
from tests.wire import open_peer, request, signed_connect_params


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    port = free_port()
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n\n[gateway.auth]\ntoken = "cli-devices-token-0123456789"\n'
        "\n[pairing]\nauto_approve_loopback = false\n"
    )
    config.chmod(0o600)
    assert run_cli(home, "gateway", "start").returncode == 0
    yield home
    run_cli(home, "gateway", "stop")


def connect_device(home: Path, identity: DeviceIdentity) -> dict[str, Any]:
    port = int((home / "config.toml").read_text().split("port = ")[1].split("\n")[0])

    async def attempt() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            peer = await open_peer(session, f"ws://127.0.0.1:{port}/")
            params = signed_connect_params(
                identity,
                peer.challenge,
                token="cli-devices-token-0123456789",
                client={
                    "id": "openclaw-linux",
                    "version": "1",
                    "platform": "linux",
                    "mode": "ui",
                    "displayName": "laptop",
                },
            )
            await peer.send(request("connect", params, "c"))
            answer = await peer.response("c")
            await peer.ws.close()
            return answer

    return asyncio.run(attempt())


def test_pair_approve_latest_rotate_revoke_remove(home: Path) -> None:
    identity = DeviceIdentity.generate()
    refused = connect_device(home, identity)
    assert refused["error"]["details"]["code"] == "PAIRING_REQUIRED"

    listing = run_cli(home, "devices", "list")
    assert listing.returncode == 0, listing.stderr
    assert "pending pairing requests" in listing.stdout and "laptop" in listing.stdout

    approved = run_cli(home, "devices", "approve", "--latest")
    assert approved.returncode == 0, approved.stderr
    assert f"approved {identity.device_id}" in approved.stdout

    welcome = connect_device(home, identity)
    token = welcome["payload"]["auth"]["deviceToken"]
    shown = run_cli(home, "devices", "list", "--json")
    assert identity.device_id in shown.stdout and token not in shown.stdout

    prefix = identity.device_id[:10]
    rotated = run_cli(home, "devices", "rotate", prefix)
    assert rotated.returncode == 0 and "rotated the operator token" in rotated.stdout
    revoked = run_cli(home, "devices", "revoke", prefix)
    assert revoked.returncode == 0 and "revoked the operator token" in revoked.stdout
    removed = run_cli(home, "devices", "remove", prefix)
    assert removed.returncode == 0 and f"removed {identity.device_id}" in removed.stdout
    assert "no paired devices" in run_cli(home, "devices", "list").stdout
    run_cli(home, "gateway", "stop")
    for path in home.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"device token found in {path}"


def test_errors_are_one_line(home: Path) -> None:
    nothing = run_cli(home, "devices", "approve", "--latest")
    assert nothing.returncode == 1 and "no pending pairing requests" in nothing.stderr
    unknown = run_cli(home, "devices", "remove", "ffff")
    assert unknown.returncode == 1 and "no paired device starts with 'ffff'" in unknown.stderr
    both = run_cli(home, "devices", "approve", "abc", "--latest")
    assert both.returncode == 2


def test_an_ambiguous_device_prefix_names_the_match_count_and_the_list_command(
    home: Path,
) -> None:
    first = DeviceIdentity.generate()
    second = DeviceIdentity.generate()
    while second.device_id[0] != first.device_id[0]:
        second = DeviceIdentity.generate()
    for identity in (first, second):
        connect_device(home, identity)
        approved = run_cli(home, "devices", "approve", "--latest")
        assert approved.returncode == 0, approved.stderr
    shared = first.device_id[0]
    result = run_cli(home, "devices", "remove", shared)
    assert result.returncode == 1
    assert f"ambiguous: 2 matches for '{shared}'" in result.stderr
    assert "`clawgate devices list`" in result.stderr
    removed = run_cli(home, "devices", "remove", first.device_id[:12])
    assert removed.returncode == 0 and f"removed {first.device_id}" in removed.stdout
