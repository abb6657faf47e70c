"""One agent run: its state, its per-run `seq`, and the payloads the wire shows of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..protocol.chat_events import agent_event
from .backend import ErrorKind

__all__ = ["AgentEvent", "Run", "RunFinished", "RunMessage", "RunStatus"]


class RunStatus(StrEnum):
    """Where a run is in its life; the last four are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    ABORTED = "aborted"


TERMINAL = frozenset({RunStatus.OK, RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.ABORTED})


@dataclass(slots=True)
class Run:
    """A run from acceptance to its end."""

    run_id: str
    session_key: str
    session_id: str
    message: str
    timeout_s: float
    accepted_at: int
    # The transcript row of the user's message: history sent to the backend stops before it.
    message_row: int = 0
    status: RunStatus = RunStatus.QUEUED
    seq: int = 0
    text: str = ""
    started_at: int | None = None
    ended_at: int | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    abort_requested: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a terminal status."""
        return self.status in TERMINAL

    def next_seq(self) -> int:
        """Return the next per-run `seq` (1 for the first event, spec §10.2)."""
        self.seq += 1
        return self.seq

    def accepted_payload(self) -> dict[str, Any]:
        """Return the first `agent` response's payload."""
        return {"runId": self.run_id, "status": "accepted", "acceptedAt": self.accepted_at}

    def final_payload(self) -> dict[str, Any]:
        """Return the final `agent` response's payload (success or failure)."""
        if self.status is RunStatus.OK:
            meta: dict[str, Any] = {"durationMs": self.duration_ms()}
            if self.stop_reason is not None:
                meta["stopReason"] = self.stop_reason
            if self.usage is not None:
                meta["usage"] = self.usage
            return {
                "runId": self.run_id,
                "status": "ok",
                "summary": "completed",
                "result": {"payloads": [{"text": self.text}], "meta": meta},
            }
        return {"runId": self.run_id, "status": "error", "summary": self.summary()}

    def summary(self) -> str:
        """Return a one-line summary of how the run ended."""
        if self.status is RunStatus.ABORTED:
            return "aborted"
        if self.status is RunStatus.TIMEOUT:
            return "timed out"
        if self.status is RunStatus.ERROR:
            return self.error or "failed"
        return "completed"

    def duration_ms(self) -> int:
        """Return how long the run ran, 0 if it never started."""
        if self.started_at is None or self.ended_at is None:
            return 0
        return max(self.ended_at - self.started_at, 0)


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One `agent` event of a run (spec §10.2), published once on the bus."""

    run_id: str
    session_key: str
    seq: int
    stream: str
    ts: int
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        """Return the wire payload of the `agent` event."""
        return agent_event(
            run_id=self.run_id,
            seq=self.seq,
            stream=self.stream,
            ts=self.ts,
            data=self.data,
            session_key=self.session_key,
        )


@dataclass(frozen=True, slots=True)
class RunFinished:
    """A run ended; published after its last `agent` event, whose `seq` it carries."""

    run: Run
    seq: int


RunMessage = AgentEvent | RunFinished
