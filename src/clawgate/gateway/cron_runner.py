"""The cron scheduler's side in the gateway: carry out a job's payload, report figures.

Loaded only once a gateway has cron jobs (see `cron_host.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from ..agents.sessions import MAIN_SESSION_KEY
from ..automation.delivery import WEBCHAT, DeliveryError, DeliveryRouter, DeliveryTarget
from ..automation.jobs import AgentTurnPayload, RunStatus, SystemEventPayload, WakeMode
from ..automation.service import CronService, RunOutcome, RunStart
from .automation import AgentTurns, TurnInterrupted, cron_session_key
from .heartbeat import HeartbeatRunner, TurnFailed
from .metrics import MetricSource, Sample
from .system_events import SystemEvents

__all__ = ["CronRunner", "cron_metrics"]

#: The most characters of a reply kept as a run's summary.
SUMMARY_CHARS: Final = 2000


class CronRunner:
    """Carry out a cron job's payload: queue a system event, or run an agent turn."""

    def __init__(
        self,
        *,
        turns: AgentTurns,
        system_events: SystemEvents,
        heartbeats: HeartbeatRunner,
        delivery: DeliveryRouter,
        clock: Callable[[], int],
    ) -> None:
        self._turns = turns
        self._system_events = system_events
        self._heartbeats = heartbeats
        self._delivery = delivery
        self._clock = clock

    async def run(self, start: RunStart) -> RunOutcome:
        """Run the job once; every failure becomes an outcome with an error."""
        job = start.job
        payload = job.spec.payload
        if isinstance(payload, SystemEventPayload):
            await self._system_events.push(payload.text, self._clock())
            if job.spec.wake_mode is WakeMode.NOW:
                self._heartbeats.request_beat()
                return RunOutcome(
                    RunStatus.OK, summary="queued for the main session; woke the heartbeat"
                )
            return RunOutcome(RunStatus.OK, summary="queued for the main session's next heartbeat")
        assert isinstance(payload, AgentTurnPayload)
        key = cron_session_key(job.id)
        try:
            reply = await self._turns.turn(
                key, payload.message, fresh=start.alone, timeout_s=payload.timeout_s
            )
        except TurnInterrupted:
            return RunOutcome(
                RunStatus.INTERRUPTED,
                "the agent run was aborted (the gateway stopped?)",
                session_key=key,
            )
        except TurnFailed as exc:
            return RunOutcome(RunStatus.ERROR, str(exc), session_key=key)
        summary = reply.strip()[:SUMMARY_CHARS] or None
        if payload.deliver and reply.strip():
            target = DeliveryTarget(payload.channel or WEBCHAT, payload.to or MAIN_SESSION_KEY)
            try:
                await self._delivery.deliver(target, reply.strip(), label=f"cron: {job.label}")
            except DeliveryError as exc:
                return RunOutcome(
                    RunStatus.ERROR, f"delivery to {target} failed: {exc}", summary, key
                )
        return RunOutcome(RunStatus.OK, summary=summary, session_key=key)


def cron_metrics(cron: CronService) -> MetricSource:
    """Return the scheduler's figures for /metrics: jobs, timer wake-ups, runs by status."""

    def samples() -> Iterator[Sample]:
        yield ("gauge", "clawgate_cron_jobs", "Cron jobs", {}, float(cron.status()["jobs"]))
        yield (
            "counter",
            "clawgate_cron_timer_wakeups",
            "Times the cron timer woke (one timer for the next due job)",
            {},
            float(cron.wakeups),
        )
        for status, count in sorted(cron.runs_by_status.items()):
            yield (
                "counter",
                "clawgate_cron_runs",
                "Cron runs by outcome",
                {"status": status},
                count,
            )

    return samples
