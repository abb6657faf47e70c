"""Atomic file writes (exact mode, all or nothing, nothing left behind) and lock files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawgate.files import (
    PRIVATE_MODE,
    AlreadyRunning,
    PidLock,
    recorded_pid,
    running_pid,
    write_atomic,
)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Let every permission through the umask, so only the helper decides the mode."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_writes_bytes_with_mode_0600(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "secret.json"
    assert write_atomic(path, b"{}") is True
    assert path.read_bytes() == b"{}"
    assert mode_of(path) == PRIVATE_MODE == 0o600


def test_writes_text_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_atomic(path, 'name = "é"\n')
    assert path.read_bytes() == 'name = "é"\n'.encode()


def test_sets_the_mode_it_is_given_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomic(tmp_path / "cert.pem", b"cert", mode=0o644)
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "cert.pem") == 0o644


def test_replaces_content_and_tightens_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "device.json"
    path.write_bytes(b"old")

    def fail(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_fsyncs_the_file_and_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_atomic(tmp_path / "key.pem", b"key")
    assert synced == [False, True]


def test_without_replace_an_existing_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "device.json"
    path.write_bytes(b"first")
    assert write_atomic(path, b"second", replace=False) is False
    assert path.read_bytes() == b"first"
    assert leftovers(tmp_path) == []


def test_without_replace_a_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "device.json"
    assert write_atomic(path, b"first", replace=False) is True
    assert path.read_bytes() == b"first"
    assert mode_of(path) == 0o600
    assert leftovers(tmp_path) == []


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "file", b"x")


def test_a_lock_records_this_pid_in_a_private_file(tmp_path: Path, open_umask: None) -> None:
    lock = PidLock(tmp_path / "gateway.pid")
    lock.acquire()
    try:
        assert recorded_pid(lock.path) == os.getpid()
        assert running_pid(lock.path) == os.getpid()
        assert mode_of(lock.path) == 0o600
    finally:
        lock.release()


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    first = PidLock(tmp_path / "hub.db.lock")
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning) as caught:
            PidLock(first.path).acquire()
        assert caught.value.pid == os.getpid()
    finally:
        first.release()


def test_a_released_lock_can_be_taken_again_and_its_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "gateway.pid"
    first = PidLock(path)
    first.acquire()
    first.release()
    assert path.exists()
    assert running_pid(path) is None
    assert recorded_pid(path) is None
    second = PidLock(path)
    second.acquire()
    second.release()


def test_a_pid_left_by_a_dead_process_does_not_block_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "gateway.pid"
    path.write_text("999999999\n")
    assert running_pid(path) is None
    lock = PidLock(path)
    lock.acquire()
    try:
        assert lock.stale_pid == 999999999
        assert recorded_pid(path) == os.getpid()
    finally:
        lock.release()


def test_no_lock_file_means_nothing_runs(tmp_path: Path) -> None:
    assert running_pid(tmp_path / "gateway.pid") is None
    assert recorded_pid(tmp_path / "gateway.pid") is None
