"""Group commit: the command records of many callers in one state.db transaction.

Every commit of state.db waits for an fsync (``synchronous=FULL``, §1.6), which costs far
more than the Python work of a command; one transaction per state change caps a plugin at a
few hundred commands a second. ``GroupCommit`` keeps at most one transaction in flight:
records saved while it runs join the next batch, which is queued the moment the running one
ends. A save with nothing in flight queues its transaction at the end of the current event
loop pass, so every task woken by the same I/O or commit shares it: starting at once would
commit the first record alone and push all the others behind that fsync.

Invariants:

- A caller resumes only after the transaction holding its records committed (a row that
  precedes an ack is committed before the ack, §1.6), or with that transaction's error.
- Batches commit in the order they were opened, and records within a batch keep call order,
  so the last state a record was given is the one on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..store import StateStore, commands_repo
from .model import Command

__all__ = ["GroupCommit"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    """Records waiting for one transaction, and the future their callers wait on."""

    records: list[Command]
    committed: asyncio.Future[None]


class GroupCommit:
    """Save command records in as few transactions as possible, in order."""

    def __init__(self, store: StateStore, on_commit: Callable[[Sequence[Command]], None]) -> None:
        """Write to ``store``; call ``on_commit`` with each batch's records once it committed."""
        self._store = store
        self._on_commit = on_commit
        self._next: _Batch | None = None
        self._running: asyncio.Future[None] | None = None
        self._scheduled = False
        self._last: _Batch | None = None  # the newest batch: batches commit in order

    async def settled(self) -> None:
        """Return once everything saved so far is committed (or its commit failed).

        A duplicate COMMAND is answered from the in-memory record; this keeps that answer
        from reporting a state that is not on disk yet (§1.6).
        """
        batch = self._last
        if batch is not None and not batch.committed.done():
            await asyncio.wait([batch.committed])

    async def save(self, records: Sequence[Command]) -> None:
        """Return once ``records`` are committed.

        Raises:
            Exception: the error of the transaction that held them (nothing may be acked).
        """
        batch = self._next
        if batch is None:
            batch = self._next = _Batch([], asyncio.get_running_loop().create_future())
            self._last = batch
        batch.records.extend(records)
        if self._running is None and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_scheduled)
        # Shielded: one caller's cancellation must not cancel a commit others wait for.
        await asyncio.shield(batch.committed)

    def _start_scheduled(self) -> None:
        self._scheduled = False
        if self._running is None:
            self._start_next()

    def _start_next(self) -> None:
        """Queue the waiting batch's transaction now, if there is one."""
        batch, self._next = self._next, None
        if batch is None:
            self._running = None
            return
        # One row per record: its latest state (a dict keeps first position, last value).
        records = list({record.command_id: record for record in batch.records}.values())
        try:
            write = self._store.write(lambda conn: commands_repo.save_commands(conn, records))
        except Exception as exc:  # e.g. StoreClosedError: the callers must hear of it
            batch.committed.set_exception(exc)
            self._start_next()
            return
        self._running = asyncio.ensure_future(write)
        self._running.add_done_callback(lambda done: self._finished(done, batch, records))

    def _finished(
        self, done: asyncio.Future[None], batch: _Batch, records: Sequence[Command]
    ) -> None:
        """Resolve the batch's callers, tell the listener, start the next batch."""
        if done.cancelled():
            batch.committed.cancel()
        elif (error := done.exception()) is not None:
            logger.error("committing %d command records failed: %s", len(records), error)
            batch.committed.set_exception(error)
        else:
            batch.committed.set_result(None)
            self._on_commit(records)
        self._start_next()
