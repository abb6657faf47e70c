"""Which jobs a cron listing shows, and where its page sits (automation/listing.py)."""

from __future__ import annotations

from typing import Any

from clawgate.automation.listing import JobFilter, Page, job_agent, page_of, snapshot_revision


def job(**fields: Any) -> dict[str, Any]:
    """Return a job's wire dict (only what the filter reads)."""
    return {
        "id": "j1",
        "name": "Morning digest",
        "enabled": True,
        "schedule": {"kind": "every", "everyMs": 60_000},
        "state": {},
        **fields,
    }


def test_by_default_only_enabled_jobs_are_listed() -> None:
    assert JobFilter().matches(job()) and not JobFilter().matches(job(enabled=False))


def test_enabled_disabled_lists_only_disabled_jobs() -> None:
    wanted = JobFilter(enabled="disabled")
    assert wanted.matches(job(enabled=False)) and not wanted.matches(job())


def test_a_job_without_an_agent_belongs_to_the_default_agent() -> None:
    assert job_agent(job(), "main") == "main"
    assert job_agent(job(agentId="ops"), "main") == "ops"
    assert JobFilter(agent_id="main").matches(job())
    assert not JobFilter(agent_id="main").matches(job(agentId="ops"))


def test_query_matches_id_name_or_description_ignoring_case() -> None:
    assert JobFilter(query="digest").matches(job())
    assert JobFilter(query="inbox").matches(job(description="Read the INBOX"))
    assert not JobFilter(query="backup").matches(job())


def test_schedule_kind_filter() -> None:
    assert JobFilter(schedule_kind="every").matches(job())
    assert not JobFilter(schedule_kind="cron").matches(job())


def test_a_job_that_never_ran_has_last_run_status_unknown() -> None:
    assert JobFilter(last_run_status="unknown").matches(job())
    assert JobFilter(last_run_status="ok").matches(job(state={"lastStatus": "ok"}))
    assert not JobFilter(last_run_status="ok").matches(job())


def test_no_job_is_conditional() -> None:
    assert not JobFilter(trigger="conditional").matches(job())
    assert JobFilter(trigger="unconditional").matches(job())


def test_a_page_without_a_limit_holds_the_rest() -> None:
    assert page_of(total=5, offset=2, limit=None) == (2, 3)


def test_an_offset_beyond_the_list_is_its_end_and_the_limit_at_least_one() -> None:
    assert page_of(total=3, offset=10, limit=None) == (3, 1)


def test_a_page_short_of_the_end_says_where_the_next_starts() -> None:
    assert Page(total=5, offset=0, limit=2, count=2).wire() == {
        "total": 5,
        "offset": 0,
        "limit": 2,
        "hasMore": True,
        "nextOffset": 2,
    }


def test_the_last_page_has_no_next_offset() -> None:
    wire = Page(total=5, offset=4, limit=2, count=1).wire()
    assert (wire["hasMore"], wire["nextOffset"]) == (False, None)


def test_equal_job_lists_have_equal_revisions_and_a_change_changes_it() -> None:
    assert snapshot_revision([job()]) == snapshot_revision([job()])
    assert snapshot_revision([job()]) != snapshot_revision([job(name="Evening digest")])
