"""A read-only look at ``state.db`` for ``clawgate doctor``."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._migrations import MIGRATIONS, Migration, latest_version
from ._sqlite import inspect_file, loose_mode, sidecars

__all__ = ["StoreHealth", "inspect_store"]


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What ``inspect_store`` found; ``message`` is one line a person can act on."""

    exists: bool
    integrity_ok: bool
    message: str
    schema_version: int
    known_version: int
    mode_ok: bool

    @property
    def ok(self) -> bool:
        """Return True when the gateway can use the file as it is (or create it)."""
        return self.integrity_ok and self.mode_ok and self.schema_version <= self.known_version


def _mode_problems(path: Path) -> list[str]:
    problems: list[str] = []
    for file in (path, *sidecars(path)):
        try:
            info = file.stat()
        except FileNotFoundError:
            continue
        if info.st_uid != os.geteuid():
            problems.append(f"{file} is owned by uid {info.st_uid}, not by this user")
        if loose_mode(info.st_mode):
            mode = stat.S_IMODE(info.st_mode)
            problems.append(f"{file} has mode {mode:04o}; it must be 0600 (chmod 600 {file})")
    return problems


def inspect_store(path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> StoreHealth:
    """Check ``path`` without changing it: existence, integrity, schema version, file modes.

    Never raises for a bad file; every finding is in the returned ``StoreHealth``.
    """
    known = latest_version(migrations)
    try:
        info = path.stat()
    except FileNotFoundError:
        message = f"{path} does not exist yet; the gateway creates it on its first start"
        return StoreHealth(False, True, message, 0, known, True)
    except OSError as exc:
        return StoreHealth(True, False, f"cannot stat {path}: {exc.strerror}", 0, known, False)
    if not stat.S_ISREG(info.st_mode):
        message = f"{path} is not a regular file; move it away"
        return StoreHealth(True, False, message, 0, known, False)
    mode_problems = _mode_problems(path)
    try:
        problem, version = inspect_file(path)
    except (OSError, sqlite3.Error) as exc:
        messages = [f"cannot check {path}: {exc}", *mode_problems]
        return StoreHealth(True, False, "; ".join(messages), 0, known, not mode_problems)
    messages = []
    if problem is not None:
        messages.append(
            f"{path} is corrupt ({problem}); the gateway will move it aside and start a fresh"
            " database on its next start"
        )
    elif version > known:
        messages.append(
            f"{path} has schema version {version}, newer than this clawgate knows ({known});"
            " upgrade clawgate"
        )
    messages.extend(mode_problems)
    if not messages:
        messages.append(f"{path} is ok (schema version {version}, this clawgate knows {known})")
    integrity_ok = problem is None
    return StoreHealth(True, integrity_ok, "; ".join(messages), version, known, not mode_problems)
