"""Scheduled runs: `[heartbeat]`, the agent's periodic turn, and `[cron]`, the job scheduler."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from ..automation.durations import parse_duration
from ..automation.heartbeat_rules import DEFAULT_ACK_TOKEN, ActiveHours
from .section import Section

__all__ = ["CronSection", "HeartbeatSection"]


class HeartbeatSection(Section):
    """`[heartbeat]`: the agent's periodic turn (gateway spec §10.1)."""

    every: str | None = Field(
        default=None,
        description=(
            'how often, e.g. "30m" or "1h"; "0m" runs no scheduled beats (`wake` still beats)'
        ),
    )
    active_hours: str | None = Field(
        default=None,
        description=(
            'a daily window in [gateway] timezone, e.g. "08:00-22:00"; unset beats around the clock'
        ),
    )
    prompt: str | None = Field(
        default=None,
        description=(
            "the heartbeat prompt; unset: HEARTBEAT.md in the agent's "
            "workspace, else a built-in one"
        ),
    )
    target: str = Field(
        default="main",
        description="the WebChat session that replies (other than the ack token) go to",
    )
    channel: str | None = Field(
        default=None,
        description="or a channel (with `to`) that replies go to instead",
    )
    to: str | None = Field(default=None, description="the peer (chat id) on that channel")
    ack_token: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default=DEFAULT_ACK_TOKEN, description="a reply that is only this token is not delivered"
    )

    @model_validator(mode="after")
    def _valid(self) -> HeartbeatSection:
        if self.every is not None:
            parse_duration(self.every)
        if self.active_hours is not None:
            ActiveHours.parse(self.active_hours)
        if (self.channel is None) != (self.to is None):
            raise ValueError("set both channel and to, or neither (target then names a session)")
        return self


class CronSection(Section):
    """`[cron]`: the scheduler."""

    enabled: bool = Field(
        default=True,
        description=(
            "false: jobs are kept and can be run by hand (cron.run), but none fires on its own"
        ),
    )
