"""Cron jobs as records: what a job does and when (its spec), and where it stands (its state).

The wire shape is spec §10.8's CronJob; clawgate adds three policy fields with defaults
(`catchUp`, `overlap`, `backoff`) and a few state fields (`runningAtMs`,
`consecutiveErrors`, `lastRunLate`). Defaults: `enabled` true, `wakeMode` "now",
`sessionTarget` "isolated" (a `systemEvent` job can only target "main", so that is its
default), `deleteAfterRun` false, `catchUp` "once", `overlap` "skip", `backoff`
"exponential".

Pure: `JobSpec.from_wire` checks a job as a whole; the records convert to and from the
JSON stored in state.db without any validation library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .delivery import WEBCHAT
from .errors import JobError
from .schedule import Schedule, ScheduleError, parse_schedule

__all__ = [
    "AgentTurnPayload",
    "Backoff",
    "CatchUp",
    "CronJob",
    "JobError",
    "JobSpec",
    "JobState",
    "Overlap",
    "RunStatus",
    "SessionTarget",
    "SystemEventPayload",
    "WakeMode",
    "merge_patch",
]

#: Where a `deliver` without a `channel` goes: WebChat.
DEFAULT_DELIVERY_CHANNEL: Final = WEBCHAT


class SessionTarget(StrEnum):
    """Where a job's payload goes."""

    MAIN = "main"  # queue a system event for the main session
    ISOLATED = "isolated"  # run an agent turn in the job's own session, cron:<jobId>


class WakeMode(StrEnum):
    """Whether a main-session job wakes the heartbeat now or waits for the next beat."""

    NOW = "now"
    NEXT_HEARTBEAT = "next-heartbeat"


class CatchUp(StrEnum):
    """What a run missed while the gateway was down or asleep becomes."""

    NONE = "none"  # recorded as skipped; the job waits for its next time
    ONCE = "once"  # at most one late run, marked late


class Overlap(StrEnum):
    """What happens when a job is due while its previous run still runs."""

    SKIP = "skip"  # recorded as skipped
    QUEUE = "queue"  # one run waits for the running one; more are skipped


class Backoff(StrEnum):
    """How a job that keeps failing is slowed down (it is never disabled silently)."""

    EXPONENTIAL = "exponential"  # 30 s, 1 min, 5 min, 15 min, then 60 min between tries
    NONE = "none"  # keep the schedule


class RunStatus(StrEnum):
    """How a run ended; `running` is only ever stored, never shown as an outcome."""

    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class SystemEventPayload:
    """Queue `text` as a system event for the main session."""

    text: str

    kind = "systemEvent"

    def wire(self) -> dict[str, Any]:
        """Return the wire form."""
        return {"kind": self.kind, "text": self.text}


@dataclass(frozen=True, slots=True)
class AgentTurnPayload:
    """Run an agent turn with `message`, optionally delivering the reply."""

    message: str
    thinking: str | None = None
    timeout_s: int | None = None
    deliver: bool = False
    channel: str | None = None
    to: str | None = None

    kind = "agentTurn"

    def wire(self) -> dict[str, Any]:
        """Return the wire form."""
        data: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.thinking is not None:
            data["thinking"] = self.thinking
        if self.timeout_s is not None:
            data["timeoutSeconds"] = self.timeout_s
        data["deliver"] = self.deliver
        if self.channel is not None:
            data["channel"] = self.channel
        if self.to is not None:
            data["to"] = self.to
        return data


Payload = SystemEventPayload | AgentTurnPayload


def _payload(data: Any) -> Payload:
    if not isinstance(data, dict):
        raise JobError("payload must be an object with kind systemEvent or agentTurn")
    kind = data.get("kind")
    if kind == SystemEventPayload.kind:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise JobError("a systemEvent payload needs text, the event to queue")
        return SystemEventPayload(text)
    if kind == AgentTurnPayload.kind:
        message = data.get("message")
        if not isinstance(message, str) or not message.strip():
            raise JobError("an agentTurn payload needs message, what to ask the agent")
        return AgentTurnPayload(
            message=message,
            thinking=data.get("thinking"),
            timeout_s=data.get("timeoutSeconds"),
            deliver=bool(data.get("deliver", False)),
            channel=data.get("channel"),
            to=data.get("to"),
        )
    raise JobError(f"unknown payload kind {kind!r}; use systemEvent or agentTurn")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job does and when: every CronJob field but id, times and state."""

    schedule: Schedule
    payload: Payload
    session_target: SessionTarget
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    agent_id: str | None = None
    wake_mode: WakeMode = WakeMode.NOW
    delete_after_run: bool = False
    catch_up: CatchUp = CatchUp.ONCE
    overlap: Overlap = Overlap.SKIP
    backoff: Backoff = Backoff.EXPONENTIAL

    @classmethod
    def from_wire(
        cls, data: dict[str, Any], *, default_tz: str, created_ms: int, check: bool = True
    ) -> JobSpec:
        """Check a job as the wire (or state.db) gives it and return its spec.

        `check=False` is for jobs read back from state.db: their cron expressions were
        checked when they were saved, and checking 10,000 of them would slow start-up.

        Raises:
            JobError: a field is missing or wrong, or the fields do not fit together.
        """
        try:
            schedule = parse_schedule(
                data.get("schedule") or {},
                default_tz=default_tz,
                anchor_ms=created_ms,
                check=check,
            )
        except ScheduleError as exc:
            raise JobError(str(exc)) from None
        payload = _payload(data.get("payload"))
        default_target = (
            SessionTarget.MAIN
            if isinstance(payload, SystemEventPayload)
            else SessionTarget.ISOLATED
        )
        try:
            target = SessionTarget(data.get("sessionTarget") or default_target)
            spec = cls(
                schedule=schedule,
                payload=payload,
                session_target=target,
                name=data.get("name"),
                description=data.get("description"),
                enabled=bool(data.get("enabled", True)),
                agent_id=data.get("agentId"),
                wake_mode=WakeMode(data.get("wakeMode") or WakeMode.NOW),
                delete_after_run=bool(data.get("deleteAfterRun", False)),
                catch_up=CatchUp(data.get("catchUp") or CatchUp.ONCE),
                overlap=Overlap(data.get("overlap") or Overlap.SKIP),
                backoff=Backoff(data.get("backoff") or Backoff.EXPONENTIAL),
            )
        except ValueError as exc:
            raise JobError(str(exc)) from None
        if target is SessionTarget.MAIN and not isinstance(payload, SystemEventPayload):
            raise JobError(
                'sessionTarget "main" takes a systemEvent payload (text queued for the main '
                'session); run an agentTurn with sessionTarget "isolated"'
            )
        if target is SessionTarget.ISOLATED and not isinstance(payload, AgentTurnPayload):
            raise JobError(
                'sessionTarget "isolated" takes an agentTurn payload; queue a systemEvent '
                'with sessionTarget "main"'
            )
        return spec

    def wire(self) -> dict[str, Any]:
        """Return the spec's wire fields, defaults written out."""
        data: dict[str, Any] = {}
        if self.name is not None:
            data["name"] = self.name
        if self.description is not None:
            data["description"] = self.description
        data["enabled"] = self.enabled
        if self.agent_id is not None:
            data["agentId"] = self.agent_id
        data["schedule"] = self.schedule.wire()
        data["sessionTarget"] = self.session_target.value
        data["wakeMode"] = self.wake_mode.value
        data["payload"] = self.payload.wire()
        data["deleteAfterRun"] = self.delete_after_run
        data["catchUp"] = self.catch_up.value
        data["overlap"] = self.overlap.value
        data["backoff"] = self.backoff.value
        return data


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Return a job's wire fields with `patch` applied (`cron.update`).

    A payload patch of the same kind updates the payload's fields; one of another kind
    replaces it. A schedule patch replaces the schedule; `None` removes an optional field.
    """
    merged = dict(current)
    for key, value in patch.items():
        if key == "payload" and isinstance(value, dict):
            old = current.get("payload") or {}
            if value.get("kind", old.get("kind")) == old.get("kind"):
                value = {**old, **value}
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


_STATE_FIELDS: Final = (
    ("next_run_ms", "nextRunAtMs"),
    ("running_since_ms", "runningAtMs"),
    ("last_run_ms", "lastRunAtMs"),
    ("last_status", "lastStatus"),
    ("last_error", "lastError"),
    ("last_duration_ms", "lastDurationMs"),
    ("last_run_late", "lastRunLate"),
    ("consecutive_errors", "consecutiveErrors"),
)


@dataclass(slots=True)
class JobState:
    """Where a job stands: its next run, what its last run did, its error streak."""

    next_run_ms: int | None = None
    running_since_ms: int | None = None
    last_run_ms: int | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_duration_ms: int | None = None
    last_run_late: bool | None = None
    consecutive_errors: int = 0
    # The latest due instant a run (or a recorded skip) consumed; stored, never shown. A
    # due instant at or before it never runs again, even if the gateway died before it
    # stored the next one.
    last_scheduled_ms: int | None = None

    def wire(self) -> dict[str, Any]:
        """Return the CronJob `state` object (absent fields left out)."""
        data: dict[str, Any] = {}
        for attribute, name in _STATE_FIELDS:
            value = getattr(self, attribute)
            if value is not None and not (name == "consecutiveErrors" and value == 0):
                data[name] = value
        return data

    def stored(self) -> dict[str, Any]:
        """Return the JSON state.db keeps."""
        data = self.wire()
        if self.last_scheduled_ms is not None:
            data["lastScheduledAtMs"] = self.last_scheduled_ms
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> JobState:
        """Return the state stored as `stored()` wrote it."""
        state = cls(last_scheduled_ms=data.get("lastScheduledAtMs"))
        for attribute, name in _STATE_FIELDS:
            if name in data:
                setattr(state, attribute, data[name])
        return state

    def copy(self) -> JobState:
        """Return an independent copy (decisions change copies, applied once persisted)."""
        # Spelled out: dataclasses.replace costs ten times as much, in a loop over due jobs.
        return JobState(
            self.next_run_ms,
            self.running_since_ms,
            self.last_run_ms,
            self.last_status,
            self.last_error,
            self.last_duration_ms,
            self.last_run_late,
            self.consecutive_errors,
            self.last_scheduled_ms,
        )


@dataclass(slots=True)
class CronJob:
    """One job: its id, its spec, when it was made and changed, and its state."""

    id: str
    spec: JobSpec
    created_ms: int
    updated_ms: int
    state: JobState = field(default_factory=JobState)

    @property
    def label(self) -> str:
        """The job's name, or its id when it has none."""
        return self.spec.name or self.id

    def wire(self) -> dict[str, Any]:
        """Return the CronJob object of spec §10.8."""
        return {
            "id": self.id,
            **self.spec.wire(),
            "createdAtMs": self.created_ms,
            "updatedAtMs": self.updated_ms,
            "state": self.state.wire(),
        }
