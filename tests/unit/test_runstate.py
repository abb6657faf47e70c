"""The state file and the identity proof, with an in-process probe (service/runstate.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clawgate.protocol.run_identity import (
    IDENTITY_CHALLENGE_HEADER,
    IDENTITY_PROOF_HEADER,
    identity_proof,
)
from clawgate.service.runstate import (
    NotRunning,
    RunState,
    clear_run_state,
    find_running,
    read_run_state,
    write_run_state,
)


def _state() -> RunState:
    return RunState.new(
        "gateway", url="wss://127.0.0.1:4242/", port=4242, boot_id="boot-1", started_ms=7
    )


def test_a_state_round_trips_through_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.run.json"
    write_run_state(path, _state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    read = read_run_state(path)
    assert read is not None and read.http_url == "https://127.0.0.1:4242"
    assert read.pid == os.getpid() and read.boot_id == "boot-1"


@pytest.mark.parametrize("content", [b"", b"[]", b'{"pid": "x"}', b"\xff"])
def test_garbage_is_no_state(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "gateway.run.json"
    path.write_bytes(content)
    assert read_run_state(path) is None


def test_clear_leaves_another_starts_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.run.json"
    write_run_state(path, _state())
    clear_run_state(path, "boot-2")
    assert path.exists()
    clear_run_state(path, "boot-1")
    assert not path.exists()


def test_a_server_with_the_key_is_found(tmp_path: Path) -> None:
    path = tmp_path / "gateway.run.json"
    state = _state()
    write_run_state(path, state)

    def probe(
        url: str, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        assert url == "https://127.0.0.1:4242/readyz"
        proof = identity_proof(state.identity_key, headers[IDENTITY_CHALLENGE_HEADER])
        assert proof is not None
        return 200, {IDENTITY_PROOF_HEADER: proof}, b"{}"

    assert find_running(path, probe=probe).url == "wss://127.0.0.1:4242/"


def test_a_server_without_the_key_is_not(tmp_path: Path) -> None:
    path = tmp_path / "gateway.run.json"
    write_run_state(path, _state())

    def probe(
        url: str, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        return 200, {IDENTITY_PROOF_HEADER: identity_proof("guess", "x") or ""}, b"{}"

    with pytest.raises(NotRunning, match="not the gateway that wrote the state file"):
        find_running(path, probe=probe)


def test_no_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(
        NotRunning, match=r"no gateway running in CLAWGATE_HOME .*start it or pass --url"
    ):
        find_running(tmp_path / "gateway.run.json")
