"""Watch the canvas root for changes with watchfiles (inotify on Linux, FSEvents on macOS).

watchfiles is imported here only, when a canvas host with live reload starts: a gateway
with the canvas off never loads it (its idle memory stays as it was).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path, PurePosixPath
from typing import Any, Final

from .paths import relative_change

__all__ = ["watch_root"]

logger = logging.getLogger(__name__)
# watchfiles logs every batch at INFO; the gateway's log wants only its problems.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

# One batch of changes ends when nothing new came for a step, or after the debounce at most.
# Each step is one short wake of the watcher thread, so it also bounds the idle cost.
_STEP_MS: Final = 100
_DEBOUNCE_MS: Final = 1_000
# How long one wait for changes in the watcher thread lasts before it starts the next.
_WAIT_MS: Final = 30_000
# The most files one new folder's listing reports.
_MAX_LISTED: Final = 1_000


def _sort_changes(root: PurePosixPath, changes: set[tuple[Any, str]]) -> tuple[list[str], bool]:
    """Return the served files among `changes` (root-relative, sorted) and whether a
    folder appeared.

    Folders themselves are left out: a page reloads for the files that changed inside
    one, and a new agent folder must not reload every other agent's page. The files
    already inside a new folder are reported: inotify watches a new folder only once
    it is told of it, and files written in that moment raise no event of their own.
    """
    found: set[str] = set()
    new_folder = False
    for _, changed in changes:
        relative = relative_change(root, PurePosixPath(changed))
        if relative is None:
            continue
        if not os.path.isdir(changed):
            found.add(relative)
            continue
        new_folder = True
        for folder, names, files in os.walk(changed):
            names[:] = [name for name in names if not name.startswith(".")]
            for name in files[:_MAX_LISTED]:
                inside = relative_change(root, PurePosixPath(folder, name))
                if inside is not None:
                    found.add(inside)
            if len(found) >= _MAX_LISTED:
                break
    return sorted(found), new_folder


async def watch_root(
    real_root: Path, on_change: Callable[[list[str]], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Await `on_change` with the root-relative paths of each batch of changes until `stop`.

    A new folder restarts the watch: a fresh watcher walks the whole tree, so a folder
    the previous one failed to add (inotify's race with fast `mkdir` + write) is watched.
    A watcher that fails (the root removed, the inotify limits reached) logs why and
    ends: the canvas keeps serving files, only live reload stops.
    """
    from watchfiles import awatch

    root = PurePosixPath(real_root)
    try:
        while not stop.is_set():
            restart = False
            watcher = awatch(
                real_root,
                stop_event=stop,
                step=_STEP_MS,
                debounce=_DEBOUNCE_MS,
                rust_timeout=_WAIT_MS,
                ignore_permission_denied=True,
            )
            async with aclosing(watcher):
                async for changes in watcher:
                    paths, restart = await asyncio.to_thread(_sort_changes, root, changes)
                    if paths:
                        await on_change(paths)
                    if restart:
                        break
            if not restart:
                return
    except (OSError, RuntimeError) as exc:
        logger.error("canvas live reload stopped: cannot watch %s: %s", real_root, exc)
