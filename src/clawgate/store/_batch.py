"""Group commit for a store on an ``OwnerThread``: the writes of many callers in one transaction.

Every commit of a WAL database with ``synchronous=FULL`` waits for an fsync, which costs far
more than the statements of a small write; one transaction per write caps a store at a few
hundred writes a second however many callers wait. ``WriteBatcher`` keeps at most one batch
on the owner thread: writes handed over while it runs share the next one, which is queued the
moment the running batch ends. A write with nothing in flight is queued at the end of the
current event-loop pass, so every task woken by the same I/O joins the same transaction.

Invariants:

- A caller resumes only after the transaction holding its write committed, with its own
  result or its own exception, or with the error that made the whole batch fail.
- Each write runs inside a SAVEPOINT: one that raises is rolled back alone and the others
  of its batch still commit. An error that ends the transaction itself (SQLite rolled it
  back) fails the whole batch, and nothing of it is on disk.
- Batches run in the order they were opened and writes within a batch in call order, so
  writes commit in the order they were handed over.
- A write whose caller was cancelled still runs, like any call given to the owner thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ._errors import StoreClosedError
from ._sqlite import immediate_transaction

__all__ = ["WriteBatcher"]

T = TypeVar("T")

Write = Callable[[sqlite3.Connection], Any]
#: Queue a call on the owner thread (``OwnerThread.submit``).
Submit = Callable[[Callable[[], Any]], "asyncio.Future[Any]"]

_SAVEPOINT: Final = "clawgate_write"


@dataclass(slots=True)
class _Pending:
    fn: Write
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: Any = None
    error: Exception | None = None


def _run_batch(conn: sqlite3.Connection, fns: list[Write]) -> list[_Outcome]:
    """Run ``fns`` in one transaction, each in its own savepoint; runs on the owner thread."""
    outcomes: list[_Outcome] = []
    with immediate_transaction(conn):
        for fn in fns:
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                result = fn(conn)
            except Exception as exc:
                if not conn.in_transaction:
                    raise  # SQLite ended the transaction: the whole batch fails
                conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                conn.execute(f"RELEASE {_SAVEPOINT}")
                outcomes.append(_Outcome(error=exc))
            else:
                conn.execute(f"RELEASE {_SAVEPOINT}")
                outcomes.append(_Outcome(result))
    return outcomes


def _settle(future: asyncio.Future[Any], outcome: _Outcome) -> None:
    if future.done():
        return  # the caller was cancelled; the write has run all the same
    if outcome.error is not None:
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome.result)


class WriteBatcher:
    """Commit write calls in shared transactions on the owner thread, in call order."""

    def __init__(self, submit: Submit, connection: Callable[[], sqlite3.Connection]) -> None:
        """Queue batches with ``submit``; ``connection()`` returns the connection on the thread."""
        self._submit = submit
        self._connection = connection
        self._waiting: list[_Pending] = []
        self._running: asyncio.Future[Any] | None = None
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the next shared transaction; return once it committed.

        Raises:
            Exception: what ``fn`` raised (its changes rolled back), or the error that failed
                the whole transaction (e.g. ``StoreClosedError``, ``sqlite3.Error``).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append(_Pending(fn, future))
        self._idle.clear()
        if self._running is None and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_scheduled)
        return await future

    async def flush(self) -> None:
        """Return once every write handed over so far has committed or failed."""
        await self._idle.wait()

    def _start_scheduled(self) -> None:
        self._scheduled = False
        if self._running is None:
            self._start_next()

    def _start_next(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            self._running = None
            self._idle.set()
            return
        connection = self._connection
        fns = [pending.fn for pending in batch]
        try:
            running = self._submit(lambda: _run_batch(connection(), fns))
        except Exception as exc:  # e.g. StoreClosedError: every caller must hear of it
            self._fail(batch, exc)
            self._start_next()
            return
        self._running = running
        running.add_done_callback(lambda done: self._finished(done, batch))

    def _finished(self, done: asyncio.Future[Any], batch: list[_Pending]) -> None:
        if done.cancelled():
            self._fail(batch, StoreClosedError("the store stopped before the write committed"))
        elif (error := done.exception()) is not None:
            self._fail(
                batch, error if isinstance(error, Exception) else StoreClosedError(str(error))
            )
        else:
            for pending, outcome in zip(batch, done.result(), strict=True):
                _settle(pending.future, outcome)
        self._start_next()

    @staticmethod
    def _fail(batch: list[_Pending], error: Exception) -> None:
        for pending in batch:
            _settle(pending.future, _Outcome(error=error))
