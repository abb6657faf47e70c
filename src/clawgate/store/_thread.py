"""A dedicated thread that runs submitted calls one at a time and hands results to asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._errors import StoreClosedError

__all__ = ["OwnerThread"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(slots=True)
class _Call(Generic[_T]):
    fn: Callable[[], _T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[_T]


@dataclass(slots=True)
class _Stop:
    final: Callable[[], None] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        # The awaiting task was cancelled; the call itself has already run to completion.
        if error is not None:
            logger.debug("store call finished after its caller left: %s", type(error).__name__)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    # RuntimeError: the loop is closed, so nobody is waiting for this result.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future, result, error)


class OwnerThread:
    """Run calls on one thread in submission order; results arrive as asyncio futures.

    Invariants: calls run strictly one after another in the order ``submit`` was called, so
    anything the thread owns (a sqlite3 connection) needs no lock. A submitted call always
    runs, even if its awaiting task is cancelled. ``stop`` runs everything submitted before it.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[_Call[Any] | _Stop] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # Guards _accepting so that no call is queued after the thread's last look at the queue.
        self._lock = threading.Lock()
        self._accepting = False
        self._stopped: asyncio.Future[None] | None = None

    @property
    def name(self) -> str:
        """The thread's name."""
        return self._thread.name

    def start(self) -> None:
        """Start the thread."""
        with self._lock:
            self._accepting = True
        self._thread.start()

    def is_alive(self) -> bool:
        """Return True while the thread runs."""
        return self._thread.is_alive()

    def submit(self, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        """Queue ``fn`` to run on the thread; return a future for its result.

        Raises:
            StoreClosedError: the thread was never started or is stopping.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            if not self._accepting:
                raise StoreClosedError("the state store is closed")
            self._queue.put(_Call(fn, loop, future))
        return future

    async def stop(self, final: Callable[[], None] | None = None) -> None:
        """Run the queued calls, then ``final``, end the thread and join it; idempotent.

        Cancelling the caller does not stop the shutdown: the thread still finishes on its own.
        """
        if self._stopped is None:
            loop = asyncio.get_running_loop()
            self._stopped = loop.create_future()
            with self._lock:
                accepting, self._accepting = self._accepting, False
                if accepting:
                    self._queue.put(_Stop(final, loop, self._stopped))
            if not accepting:
                self._stopped.set_result(None)
        await asyncio.shield(self._stopped)
        if self._thread.ident is not None:
            # The thread resolves _stopped just before it returns, so this join is immediate.
            self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _Stop):
                    self._finish(item)
                    return
                try:
                    result = item.fn()
                except Exception as exc:
                    _deliver(item.loop, item.future, error=exc)
                except BaseException:
                    # SystemExit and the like: end the thread, but fail loudly, never hang.
                    logger.exception("a store call ended the store thread")
                    _deliver(item.loop, item.future, error=StoreClosedError("store thread died"))
                    return
                else:
                    _deliver(item.loop, item.future, result)
        finally:
            self._fail_queued()

    def _finish(self, stop: _Stop) -> None:
        if stop.final is not None:
            try:
                stop.final()
            except Exception:
                logger.exception("closing the state store failed")
        _deliver(stop.loop, stop.future)

    def _fail_queued(self) -> None:
        with self._lock:
            self._accepting = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Stop):
                _deliver(item.loop, item.future)
            else:
                closed = StoreClosedError("the state store is closed")
                _deliver(item.loop, item.future, error=closed)
