"""Group commit: the command records of many callers in one state.db transaction.

Every commit of state.db waits for an fsync (``synchronous=FULL``, §1.6), which costs far
more than the Python work of a command; one transaction per state change caps a plugin at a
few hundred commands a second. ``GroupCommit`` collects saved records in an open batch and
lets the store's owner thread seal it: the thread takes the whole open batch at the moment it
begins the transaction. While one transaction runs, the commit call for the next batch is
already queued behind it on the owner thread, so the thread goes from one commit straight to
the next and every record saved during a commit shares the following one, without waiting
for the event loop in between. A save with nothing in flight queues its commit call at the end
of the current event-loop pass instead, so every task woken by the same I/O or commit shares it.

Invariants:

- A caller resumes (or its future completes) only after the transaction holding its records
  committed (a row that precedes an ack is committed before the ack, §1.6), or with that
  transaction's error.
- At most one commit call is queued and not yet sealed; it seals every record saved before it
  starts, so no saved record is left without a commit call that will take it.
- Batches commit in the order they were sealed, and records within a batch keep call order,
  so the last state a record was given is the one on disk; commit listeners see the batches
  in that order, before any caller of the batch resumes.
- The open batch is touched by the loop and the owner thread, always under ``_lock``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store import StateStore, StoreClosedError, commands_repo
from .model import Command

__all__ = ["GroupCommit"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    """Records waiting for one transaction, and the futures of the calls that saved them."""

    records: list[Command] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


def _latest(records: Sequence[Command]) -> list[Command]:
    """Return one record per command, its latest state (a dict keeps first position)."""
    return list({record.command_id: record for record in records}.values())


class GroupCommit:
    """Save command records in as few transactions as possible, in order."""

    def __init__(self, store: StateStore, on_commit: Callable[[Sequence[Command]], None]) -> None:
        """Write to ``store``; call ``on_commit`` with each batch's records once it committed."""
        self._store = store
        self._on_commit = on_commit
        self._lock = threading.Lock()
        self._open = _Batch()
        self._sealer_queued = False  # a commit call is queued and has not sealed yet
        self._in_flight = 0  # commit calls handed to the store, not yet settled here

    async def save(self, records: Sequence[Command]) -> None:
        """Return once ``records`` are committed.

        Raises:
            Exception: the error of the transaction that held them (nothing may be acked).
        """
        await self.save_nowait(records)

    def save_nowait(self, records: Sequence[Command]) -> asyncio.Future[None]:
        """Hand ``records`` to the next transaction; return a future for its commit.

        The future is the caller's own: cancelling it withdraws nothing. Its error is the
        transaction's (nothing may be acked). With no records it is a barrier: it completes
        once everything saved before it is committed (at once when nothing is pending), so a
        state answered from memory (a duplicate COMMAND) is on disk before it is reported.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if not records and not self._in_flight and not self._sealer_queued:
            waiter.set_result(None)
            return waiter
        with self._lock:
            self._open.records.extend(records)
            self._open.waiters.append(waiter)
            queue_commit = not self._sealer_queued
            self._sealer_queued = True
        if queue_commit:
            if self._in_flight:
                self._queue_commit()  # behind the running commit: sealed when it starts
            else:
                loop.call_soon(self._queue_commit)
        return waiter

    def _queue_commit(self) -> None:
        """Queue one commit call on the owner thread; it seals the open batch when it starts."""
        sealed: list[_Batch] = []
        try:
            running = self._store.submit_write(lambda conn: self._commit(conn, sealed))
        except Exception as exc:  # e.g. StoreClosedError: the callers must hear of it
            self._settle(self._take_open(), [], exc)
            return
        self._in_flight += 1
        running.add_done_callback(lambda done: self._committed(done, sealed))

    def _take_open(self) -> _Batch:
        with self._lock:
            batch, self._open = self._open, _Batch()
            self._sealer_queued = False
        return batch

    def _commit(self, conn: Any, sealed: list[_Batch]) -> list[Command]:
        """Seal the open batch and write it (on the owner thread, inside the transaction).

        ``conn`` is the store's connection; only store/ names the sqlite3 types.
        """
        batch = self._take_open()
        sealed.append(batch)
        records = _latest(batch.records)
        if records:
            commands_repo.save_commands(conn, records)
        return records

    def _committed(self, done: asyncio.Future[list[Command]], sealed: list[_Batch]) -> None:
        """Resolve the sealed batch's callers and tell the listener, in commit order."""
        self._in_flight -= 1
        # A call that failed before it sealed leaves its batch open: it is this call's.
        batch = sealed[0] if sealed else self._take_open()
        if done.cancelled():
            self._settle(batch, [], StoreClosedError("the store stopped before the commit"))
        elif (error := done.exception()) is not None:
            logger.error("committing %d command records failed: %s", len(batch.records), error)
            self._settle(batch, [], error)
        else:
            self._settle(batch, done.result(), None)

    def _settle(
        self, batch: _Batch, records: Sequence[Command], error: BaseException | None
    ) -> None:
        if error is None and records:
            self._on_commit(records)
        for waiter in batch.waiters:
            if waiter.done():
                continue  # its caller gave up; the records are committed all the same
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
