"""Cron job records without I/O: defaults, combinations refused, patches, stored state."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.automation.jobs import (
    CatchUp,
    JobError,
    JobSpec,
    JobState,
    Overlap,
    SessionTarget,
    WakeMode,
    merge_patch,
)

TURN = {"kind": "agentTurn", "message": "summarise my inbox"}
EVENT = {"kind": "systemEvent", "text": "stand up"}
EVERY = {"kind": "every", "everyMs": 60_000}


def spec(**fields: Any) -> JobSpec:
    return JobSpec.from_wire(fields, default_tz="Europe/Berlin", created_ms=1_000)


def test_defaults_are_written_out() -> None:
    job = spec(schedule=EVERY, payload=TURN)
    assert job.enabled is True
    assert job.wake_mode is WakeMode.NOW
    assert job.session_target is SessionTarget.ISOLATED
    assert job.delete_after_run is False
    assert job.catch_up is CatchUp.ONCE
    assert job.overlap is Overlap.SKIP
    wire = job.wire()
    assert wire["schedule"] == {"kind": "every", "everyMs": 60_000, "anchorMs": 1_000}
    assert wire["payload"] == {**TURN, "deliver": False}
    assert (wire["catchUp"], wire["overlap"], wire["backoff"]) == ("once", "skip", "exponential")


def test_a_system_event_job_targets_the_main_session_by_default() -> None:
    assert spec(schedule=EVERY, payload=EVENT).session_target is SessionTarget.MAIN


def test_an_agent_turn_in_the_main_session_is_refused() -> None:
    with pytest.raises(JobError, match='sessionTarget "main" takes a systemEvent payload'):
        spec(schedule=EVERY, payload=TURN, sessionTarget="main")


def test_a_system_event_in_an_isolated_session_is_refused() -> None:
    with pytest.raises(JobError, match='"isolated" takes an agentTurn payload'):
        spec(schedule=EVERY, payload=EVENT, sessionTarget="isolated")


def test_a_blank_message_is_refused() -> None:
    with pytest.raises(JobError, match="needs message"):
        spec(schedule=EVERY, payload={"kind": "agentTurn", "message": "  "})


def test_a_payload_patch_of_the_same_kind_changes_only_its_fields() -> None:
    current = spec(schedule=EVERY, payload={**TURN, "deliver": True, "to": "main"}).wire()
    merged = merge_patch(current, {"payload": {"kind": "agentTurn", "message": "new"}})
    assert merged["payload"] == {
        "kind": "agentTurn",
        "message": "new",
        "deliver": True,
        "to": "main",
    }


def test_a_payload_patch_of_another_kind_replaces_the_payload() -> None:
    current = spec(schedule=EVERY, payload=TURN).wire()
    merged = merge_patch(current, {"payload": EVENT, "sessionTarget": "main"})
    assert spec(**merged).payload.wire() == EVENT


def test_a_null_in_a_patch_removes_the_field() -> None:
    current = spec(schedule=EVERY, payload=TURN, name="inbox").wire()
    assert "name" not in merge_patch(current, {"name": None})


def test_the_stored_state_keeps_the_consumed_instant_the_wire_does_not_show() -> None:
    state = JobState(next_run_ms=5, last_status="ok", consecutive_errors=0, last_scheduled_ms=4)
    assert state.wire() == {"nextRunAtMs": 5, "lastStatus": "ok"}
    assert JobState.from_stored(state.stored()) == state
