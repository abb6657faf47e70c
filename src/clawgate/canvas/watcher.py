"""Watch the canvas root for changes with watchfiles (inotify on Linux, FSEvents on macOS).

watchfiles is imported here only, when a canvas host with live reload starts: a gateway
with the canvas off never loads it (its idle memory stays as it was).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Final

from .paths import relative_change

__all__ = ["watch_root"]

logger = logging.getLogger(__name__)

# One batch of changes ends when nothing new came for a step, or after the debounce at most.
# Each step is one short wake of the watcher thread, so it also bounds the idle cost.
_STEP_MS: Final = 100
_DEBOUNCE_MS: Final = 1_000
# How long one wait for changes in the watcher thread lasts before it starts the next.
_WAIT_MS: Final = 30_000


async def watch_root(
    real_root: Path, on_change: Callable[[list[str]], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Await `on_change` with the root-relative paths of each batch of changes until `stop`.

    A watcher that fails (the root removed, the inotify watch limit reached) logs why and
    ends: the canvas keeps serving files, only live reload stops.
    """
    from watchfiles import awatch

    root = PurePosixPath(real_root)
    try:
        async for changes in awatch(
            real_root,
            stop_event=stop,
            step=_STEP_MS,
            debounce=_DEBOUNCE_MS,
            rust_timeout=_WAIT_MS,
            ignore_permission_denied=True,
        ):
            paths = {relative_change(root, PurePosixPath(changed)) for _, changed in changes}
            paths.discard(None)
            if paths:
                await on_change(sorted(p for p in paths if p is not None))
    except (OSError, RuntimeError) as exc:
        logger.error("canvas live reload stopped: cannot watch %s: %s", real_root, exc)
