"""Group commit on a `StateStore`: the writes of one event-loop pass share a transaction.

Used by the channel layer for its dedupe claims and delivery records: a burst of inbound
messages (or of replies) would otherwise cost one fsync'd transaction each. `GroupWriter`
runs every write handed to it within one event-loop pass in a single `StateStore.write`
transaction, each inside its own SAVEPOINT, and resumes each caller only after that
transaction committed, with its own result or exception. So "persist before acknowledging"
still holds for every caller; they only share the fsync.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ._state import StateStore

__all__ = ["GroupWriter"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]


class GroupWriter:
    """Batch the writes of one loop pass into one transaction."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._scheduled = False

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the next group transaction; return once it committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The write goes on without its caller; a failure must still be heard.
            future.add_done_callback(_report_unawaited)
            raise

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._scheduled = False

        def run(conn: sqlite3.Connection) -> list[tuple[bool, Any]]:
            outcomes: list[tuple[bool, Any]] = []
            for fn, _ in batch:
                conn.execute("SAVEPOINT channel_write")
                try:
                    result = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO channel_write")
                    conn.execute("RELEASE channel_write")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE channel_write")
                    outcomes.append((True, result))
            return outcomes

        task = asyncio.ensure_future(self._store.write(run))
        task.add_done_callback(lambda done: self._resolve(batch, done))

    @staticmethod
    def _resolve(batch: list[tuple[Write, asyncio.Future[Any]]], done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            error = done.exception() if not done.cancelled() else asyncio.CancelledError()
            for _, future in batch:
                if not future.done():
                    future.set_exception(error or RuntimeError("group write failed"))
            return
        for (_, future), (ok, value) in zip(batch, done.result(), strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _report_unawaited(future: asyncio.Future[Any]) -> None:
    """Log the failure of a write whose caller was cancelled while it waited."""
    if not future.cancelled() and (error := future.exception()) is not None:
        logger.error("a channel write whose caller stopped waiting failed: %s", error)
