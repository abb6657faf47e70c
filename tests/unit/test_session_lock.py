"""One process per platform session: the lock refuses a second opener, even in another process."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clawgate.channels.session_lock import SessionBusy, SessionLock

HOLD = """
import sys, time
from pathlib import Path
from clawgate.channels.session_lock import SessionLock
SessionLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "wa" / "session.lock"
    holder = _holder(path)
    try:
        with pytest.raises(SessionBusy, match=f"process {holder.pid}"):
            SessionLock(path).acquire()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_free_again_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "session.lock"
    holder = _holder(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = SessionLock(path)
    lock.acquire()
    assert lock.held and path.read_text().strip() == str(os.getpid())
    lock.release()


def test_the_lock_file_and_its_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "session.lock"
    lock = SessionLock(path)
    lock.acquire()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        lock.release()


def test_a_second_opener_in_the_same_process_is_refused_until_release(tmp_path: Path) -> None:
    path = tmp_path / "session.lock"
    first, second = SessionLock(path), SessionLock(path)
    first.acquire()
    with pytest.raises(SessionBusy):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
