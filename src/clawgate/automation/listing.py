"""Which jobs and runs a listing shows, and its page (pure: wire dicts in, wire dicts out).

`cron.list` and `cron.runs` take OpenClaw 2026.9.6's filters and paging (its Control UI's
automations page sends them and checks the page it gets back: `total`, `offset`, `limit`,
`hasMore`, `nextOffset`, and for jobs a `snapshotRevision` that changes when any listed job
does, so a reader paging through can tell the list moved under it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = ["JobFilter", "Page", "job_agent", "page_of", "snapshot_revision"]

EnabledFilter = Literal["all", "enabled", "disabled"]


def job_agent(job: Mapping[str, Any], default_agent: str) -> str:
    """Return the agent a job's turns run as (its own, else the default agent)."""
    agent = job.get("agentId")
    return agent if isinstance(agent, str) else default_agent


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The jobs `cron.list` shows (OpenClaw's filters; "all" lets everything through)."""

    enabled: EnabledFilter = "enabled"
    agent_id: str | None = None
    default_agent: str = "main"
    query: str = ""
    schedule_kind: str = "all"
    last_run_status: str = "all"
    trigger: str = "all"

    def matches(self, job: Mapping[str, Any]) -> bool:
        """Whether the job (its wire dict) is listed."""
        if self.enabled != "all" and job["enabled"] != (self.enabled == "enabled"):
            return False
        if self.agent_id is not None and job_agent(job, self.default_agent) != self.agent_id:
            return False
        if self.schedule_kind != "all" and job["schedule"]["kind"] != self.schedule_kind:
            return False
        last = job.get("state", {}).get("lastStatus") or "unknown"
        if self.last_run_status != "all" and last != self.last_run_status:
            return False
        # clawgate's jobs have no condition: every one is "unconditional".
        if self.trigger == "conditional":
            return False
        return not self.query or self.query.lower() in _searchable(job)


def _searchable(job: Mapping[str, Any]) -> str:
    fields = (job["id"], job.get("name"), job.get("description"), job.get("agentId"))
    return " ".join(f for f in fields if isinstance(f, str)).lower()


@dataclass(frozen=True, slots=True)
class Page:
    """Where a page sits in a listing of `total` items."""

    total: int
    offset: int
    limit: int
    count: int

    def wire(self) -> dict[str, Any]:
        """Return `{total, offset, limit, hasMore, nextOffset}`."""
        after = self.offset + self.count
        more = after < self.total
        return {
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "hasMore": more,
            "nextOffset": after if more else None,
        }


def page_of(total: int, offset: int, limit: int | None) -> tuple[int, int]:
    """Return the (offset, limit) of a page: offset within the list, limit at least 1.

    Without a limit the page holds every item from the offset on.
    """
    start = min(max(offset, 0), total)
    return start, max(1, limit if limit is not None else total - start)


def snapshot_revision(jobs: Sequence[Mapping[str, Any]]) -> str:
    """Return a revision of the listed jobs: equal lists give equal revisions."""
    digest = hashlib.sha256(orjson.dumps(list(jobs), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest[:32]}"
