"""Run agent runs: one lane per session, runs in a lane one at a time in arrival order.

Runs on different sessions run concurrently and never wait for each other. Each run is a
task of its own so `abort` can cancel exactly it, which also cancels the backend's stream.
Finished runs are kept for the dedupe window (spec §9) so a retry with the same run id,
or `agent.wait`, finds the outcome instead of starting a second run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Final

from ..bus import Bus
from .backend import (
    AgentBackend,
    BackendError,
    BackendRequest,
    Completion,
    ErrorKind,
    HistoryMessage,
    TextDelta,
)
from .run import AgentEvent, Run, RunFinished, RunMessage, RunStatus

__all__ = ["HistoryLoader", "RunManager"]

logger = logging.getLogger(__name__)

RETAIN_MS: Final = 300_000
RETAIN_MAX: Final = 1000

HistoryLoader = Callable[[Run], Awaitable[list[HistoryMessage]]]


class RunManager:
    """Accept, serialise, execute, abort and remember agent runs."""

    def __init__(
        self,
        bus: Bus[RunMessage],
        backend: AgentBackend,
        history: HistoryLoader,
        clock: Callable[[], int],
        *,
        retain_ms: int = RETAIN_MS,
        retain_max: int = RETAIN_MAX,
    ) -> None:
        self._bus = bus
        self.backend = backend
        self._history = history
        self._clock = clock
        self._retain_ms = retain_ms
        self._retain_max = retain_max
        self._active: dict[str, Run] = {}
        self._finished: OrderedDict[str, Run] = OrderedDict()
        self._lanes: dict[str, deque[Run]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # -- looking up -----------------------------------------------------------------

    def get(self, run_id: str) -> Run | None:
        """Return the active or recently finished run `run_id`, or None."""
        self._expire()
        return self._active.get(run_id) or self._finished.get(run_id)

    def active_for(self, session_key: str) -> list[Run]:
        """Return the session's queued and running runs, oldest first."""
        return [run for run in self._active.values() if run.session_key == session_key]

    def lane_loads(self) -> list[tuple[str, int, int]]:
        """Return `(session key, running, waiting)` for each session lane with runs."""
        return [(key, 1, len(lane) - 1) for key, lane in sorted(self._lanes.items()) if lane]

    def active_count(self) -> int:
        """Return how many runs are queued or running."""
        return len(self._active)

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called: no run is accepted any more."""
        return self._stopping

    # -- accepting ------------------------------------------------------------------

    def submit(self, run: Run) -> None:
        """Queue `run` behind the session's earlier runs; it must be new (see `get`)."""
        if run.run_id in self._active or self._stopping:
            raise RuntimeError(f"run {run.run_id} cannot be submitted")
        self._finished.pop(run.run_id, None)
        self._active[run.run_id] = run
        self._lanes.setdefault(run.session_key, deque()).append(run)
        if run.session_key not in self._workers:
            worker = asyncio.create_task(self._drain(run.session_key), name="agent-lane")
            self._workers[run.session_key] = worker

    async def _drain(self, session_key: str) -> None:
        lane = self._lanes[session_key]
        try:
            while lane:
                run = lane[0]
                if not run.finished:
                    task = asyncio.create_task(self._execute(run), name=f"run-{run.run_id}")
                    run.task = task
                    # Shielded: only `abort` cancels a run, never the lane's waiting.
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(task)
                    if not run.finished:
                        # Aborted before its first step: the coroutine never ran.
                        self._finish(run, RunStatus.ABORTED)
                lane.popleft()
        finally:
            del self._workers[session_key]
            if not lane:
                del self._lanes[session_key]

    # -- aborting -------------------------------------------------------------------

    def abort(self, run_id: str) -> bool:
        """Stop the run and its backend stream; return whether it was still active."""
        run = self._active.get(run_id)
        if run is None or run.abort_requested:
            return False
        run.abort_requested = True
        if run.task is not None:
            run.task.cancel()
        else:
            self._finish(run, RunStatus.ABORTED)  # still queued: it never starts
        return True

    def abort_session(self, session_key: str) -> list[str]:
        """Abort every active run of a session; return their ids."""
        return [run.run_id for run in self.active_for(session_key) if self.abort(run.run_id)]

    async def stop(self) -> None:
        """Abort every run and wait until each has published its end."""
        self._stopping = True
        for run_id in list(self._active):
            self.abort(run_id)
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    # -- waiting --------------------------------------------------------------------

    @staticmethod
    async def wait(run: Run, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for `run` to end; return whether it did."""
        try:
            async with asyncio.timeout(timeout_s):
                await run.done.wait()
        except TimeoutError:
            return False
        return True

    # -- executing ------------------------------------------------------------------

    def _emit(self, run: Run, stream: str, data: dict[str, object]) -> int:
        seq = run.next_seq()
        self._bus.publish(AgentEvent(run.run_id, run.session_key, seq, stream, self._clock(), data))
        return seq

    async def _execute(self, run: Run) -> None:
        run.status = RunStatus.RUNNING
        run.started_at = self._clock()
        self._emit(run, "lifecycle", {"phase": "start", "startedAt": run.started_at})
        try:
            async with asyncio.timeout(run.timeout_s):
                history = await self._history(run)
                request = BackendRequest(run.run_id, run.session_key, run.message, tuple(history))
                async for item in self.backend.stream(request):
                    if isinstance(item, TextDelta):
                        if item.text:
                            run.text += item.text
                            self._emit(run, "assistant", {"text": run.text, "delta": item.text})
                    elif isinstance(item, Completion):
                        run.stop_reason = item.stop_reason
                        run.usage = item.usage
        except asyncio.CancelledError:
            if not run.abort_requested:
                raise
            self._finish(run, RunStatus.ABORTED)
        except TimeoutError:
            message = f"the agent did not finish within {run.timeout_s:g} s"
            self._finish(run, RunStatus.TIMEOUT, message, ErrorKind.TIMEOUT)
        except BackendError as exc:
            self._finish(run, RunStatus.ERROR, exc.message, exc.kind)
        except Exception:
            logger.exception("agent backend %s failed on run %s", self.backend.name, run.run_id)
            message = f"the {self.backend.name} backend failed unexpectedly; see the gateway log"
            self._finish(run, RunStatus.ERROR, message, ErrorKind.UNKNOWN)
        else:
            self._finish(run, RunStatus.OK)

    def _finish(
        self,
        run: Run,
        status: RunStatus,
        error: str | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        run.status = status
        run.ended_at = self._clock()
        run.error = error
        run.error_kind = kind
        if status in (RunStatus.ERROR, RunStatus.TIMEOUT):
            reason = "timeout" if status is RunStatus.TIMEOUT else (kind or ErrorKind.UNKNOWN)
            self._emit(run, "error", {"reason": str(reason), "message": error})
            seq = self._emit(
                run, "lifecycle", {"phase": "error", "error": error, "endedAt": run.ended_at}
            )
        else:
            data: dict[str, object] = {"phase": "end", "endedAt": run.ended_at}
            if status is RunStatus.ABORTED:
                data["aborted"] = True
            seq = self._emit(run, "lifecycle", data)
        self._active.pop(run.run_id, None)
        self._finished[run.run_id] = run
        self._expire()
        self._bus.publish(RunFinished(run, seq))
        run.done.set()

    def _expire(self) -> None:
        cutoff = self._clock() - self._retain_ms
        finished = self._finished
        while finished:
            run_id, run = next(iter(finished.items()))
            if len(finished) <= self._retain_max and (run.ended_at or 0) > cutoff:
                break
            del finished[run_id]
