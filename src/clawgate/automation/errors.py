"""What the cron side raises to the methods that call it (kept apart so they load nothing else)."""

from __future__ import annotations

__all__ = ["JobError", "UnknownJob"]


class JobError(ValueError):
    """A job cannot be saved as given; the message says what to change."""


class UnknownJob(LookupError):
    """No such job (or it was removed over a week ago)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown cron job {job_id!r}; see cron.list for the ids")
        self.job_id = job_id
