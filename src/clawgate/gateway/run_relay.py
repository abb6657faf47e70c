"""Turn run messages from the bus into `agent` and `chat` broadcasts (spec §10.2, §10.3).

`chat` deltas are coalesced to at most one per `interval_ms` per run: the newest text
waits for the interval to pass, and whatever waits is flushed before the terminal event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..agents.run import AgentEvent, RunFinished, RunMessage, RunStatus
from ..protocol.chat_events import TerminalState, chat_delta, chat_terminal
from ..protocol.limits import CHAT_DELTA_INTERVAL_MS
from .broadcaster import Broadcaster

__all__ = ["RunRelay"]


@dataclass(slots=True)
class _ChatStream:
    """The delta state of one run's chat stream."""

    sent_text: str = ""
    last_sent_ms: float | None = None  # monotonic ms
    pending: tuple[int, str] | None = None  # (agent seq, cumulative text) not yet sent
    timer: asyncio.TimerHandle | None = None


_TERMINAL_STATES: dict[RunStatus, TerminalState] = {
    RunStatus.OK: "final",
    RunStatus.ABORTED: "aborted",
}


def _monotonic_ms() -> float:
    # The throttle measures with this: a wall clock stepped back would stall a stream
    # (timestamps in the events stay wall-clock).
    return time.monotonic() * 1000


class RunRelay:
    """A bus handler that broadcasts run events to operator connections."""

    def __init__(
        self,
        broadcaster: Broadcaster[Any],
        clock: Callable[[], int],
        interval_ms: int = CHAT_DELTA_INTERVAL_MS,
    ) -> None:
        self._broadcaster = broadcaster
        self._clock = clock
        self._interval_ms = interval_ms
        self._streams: dict[str, _ChatStream] = {}

    def __call__(self, message: RunMessage) -> None:
        """Relay one bus message."""
        if isinstance(message, AgentEvent):
            self._broadcaster.broadcast("agent", message.payload())
            if message.stream == "assistant":
                self._offer_delta(message)
        else:
            self._finish(message)

    # -- deltas ---------------------------------------------------------------------

    def _offer_delta(self, event: AgentEvent) -> None:
        stream = self._streams.setdefault(event.run_id, _ChatStream())
        stream.pending = (event.seq, event.data["text"])
        if stream.timer is None:
            self._flush_when_due(event.run_id, event.session_key, stream)

    def _flush_when_due(self, run_id: str, session_key: str, stream: _ChatStream) -> None:
        stream.timer = None
        if stream.pending is None:
            return
        now = self._clock()
        if stream.last_sent_ms is not None:
            wait_ms = stream.last_sent_ms + self._interval_ms - _monotonic_ms()
            if wait_ms > 0:
                stream.timer = asyncio.get_running_loop().call_later(
                    wait_ms / 1000, self._flush_when_due, run_id, session_key, stream
                )
                return
        self._send_delta(run_id, session_key, stream, now)

    def _send_delta(self, run_id: str, session_key: str, stream: _ChatStream, now: int) -> None:
        assert stream.pending is not None
        seq, text = stream.pending
        stream.pending = None
        payloads = chat_delta(
            run_id=run_id,
            session_key=session_key,
            seq=seq,
            text=text,
            sent_text=stream.sent_text,
            now=now,
        )
        stream.sent_text = text
        stream.last_sent_ms = _monotonic_ms()
        self._broadcaster.broadcast_per_protocol("chat", payloads)

    # -- the end ----------------------------------------------------------------------

    def _finish(self, finished: RunFinished) -> None:
        run = finished.run
        stream = self._streams.pop(run.run_id, None)
        now = self._clock()
        if stream is not None:
            if stream.timer is not None:
                stream.timer.cancel()
            if stream.pending is not None:
                self._send_delta(run.run_id, run.session_key, stream, now)
        payload = chat_terminal(
            run_id=run.run_id,
            session_key=run.session_key,
            seq=finished.seq,
            state=_TERMINAL_STATES.get(run.status, "error"),
            now=now,
            text=run.text,
            stop_reason=run.stop_reason,
            usage=run.usage,
            error_message=run.error,
            error_kind=str(run.error_kind or "unknown"),
        )
        self._broadcaster.broadcast("chat", payload)
