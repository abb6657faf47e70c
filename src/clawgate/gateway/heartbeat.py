"""The heartbeat runner: the agent's own periodic turn, switchable at run time (spec §10.1).

One beat: gate it (switched off, outside `active_hours` for a scheduled beat, no agent, a
beat already running), ask the agent with the prompt and the queued system events, then
judge the reply (`automation/heartbeat_rules.py`): empty or only the acknowledgement token
is not delivered; anything else is delivered to the target. Every beat ends in one
HeartbeatEvent (`sent`, `ok-empty`, `ok-token`, `skipped` or `failed`, with a reason),
announced as `heartbeat` and kept for `last-heartbeat`. System events are consumed only by
a turn that answered, so a failed turn leaves them for the next one.

Scheduled beats follow the event loop's monotonic clock: a machine that slept, or a wall
clock that jumped, gets one beat, not a burst. `wake` asks for a beat now; a wake that
arrives during a beat gets one more beat right after it. Active hours are read on the
injected wall clock in the configured zone, and gate scheduled beats only: a `wake` is an
explicit request and runs outside them too (never while heartbeats are switched off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

from ..agents.sessions import canonical_key
from ..automation.delivery import WEBCHAT, DeliveryError, DeliveryRouter, DeliveryTarget
from ..automation.durations import format_duration
from ..automation.heartbeat_rules import (
    DEFAULT_PROMPT,
    ActiveHours,
    HeartbeatSettings,
    ReplyKind,
    classify_reply,
)
from ..automation.zones import wall_time
from ..config import ClawgateConfig
from ..store import StateStore, gateway_state
from .system_events import SystemEvents

__all__ = [
    "HEARTBEAT_FILE",
    "BeatTrigger",
    "HeartbeatAgent",
    "HeartbeatRunner",
    "TurnFailed",
    "format_every",
    "heartbeat_settings",
]

logger = logging.getLogger(__name__)

#: The state.db meta record that keeps the switch across restarts.
ENABLED_KEY: Final = "heartbeats_enabled"
#: The file in the agent's workspace whose text is the prompt when `[heartbeat] prompt` is unset.
HEARTBEAT_FILE: Final = "HEARTBEAT.md"
_PROMPT_FILE_MAX_BYTES: Final = 64 * 1024
_PREVIEW_CHARS: Final = 200

format_every = format_duration


def heartbeat_settings(config: ClawgateConfig) -> HeartbeatSettings:
    """Return the `[heartbeat]` settings of `config`, the deprecated alias resolved."""
    section = config.heartbeat
    if section.channel is not None and section.to is not None:
        target = DeliveryTarget(section.channel, section.to)
    else:
        target = DeliveryTarget(WEBCHAT, canonical_key(section.target))
    hours = section.active_hours
    return HeartbeatSettings(
        every_s=config.heartbeat_every_s(),
        active_hours=ActiveHours.parse(hours) if hours is not None else None,
        prompt=section.prompt,
        target=target,
        ack_token=section.ack_token,
    )


class BeatTrigger(StrEnum):
    """Why a beat runs."""

    SCHEDULED = "scheduled"
    WAKE = "wake"


class TurnFailed(Exception):
    """The agent turn did not answer; the message says why (shown as the beat's reason)."""


class HeartbeatAgent(Protocol):
    """Runs one heartbeat turn."""

    def available(self) -> bool:
        """Whether an agent can answer (the gateway keeps sessions)."""

    async def heartbeat_turn(self, message: str) -> str:
        """Ask the agent `message` in the heartbeat session and return its reply.

        Raises:
            TurnFailed: the turn failed, timed out or was aborted.
        """


class HeartbeatRunner:
    """Beat every `every_s` seconds while enabled, on `wake`, and remember the last beat."""

    def __init__(
        self,
        *,
        settings: HeartbeatSettings,
        zone: str,
        clock: Callable[[], int],
        on_heartbeat: Callable[[dict[str, Any]], None],
        agent: HeartbeatAgent | None = None,
        system_events: SystemEvents | None = None,
        delivery: DeliveryRouter | None = None,
        workspace: Path | None = None,
        store: StateStore | None = None,
        enabled: bool = True,
    ) -> None:
        """Beat with `agent`, announce with `on_heartbeat`; keep the switch in `store`."""
        self.settings = settings
        self._zone = zone
        self._clock = clock
        self._on_heartbeat = on_heartbeat
        self._agent = agent
        self._system_events = system_events
        self._delivery = delivery
        self._workspace = workspace
        self._store = store
        self.enabled = enabled
        self.last: dict[str, Any] | None = None
        self._beating = asyncio.Lock()
        self._poke = asyncio.Event()
        self._wake_requested = False
        self._retime = False

    @property
    def every_s(self) -> int:
        """Seconds between scheduled beats (0: none)."""
        return self.settings.every_s

    # -- the switch and the settings --------------------------------------------------

    async def load(self) -> None:
        """Restore the switch from the store."""
        if self._store is None:
            return
        saved = await self._store.read(lambda conn: gateway_state.get_value(conn, ENABLED_KEY))
        if saved is not None:
            self.enabled = saved == "true"

    async def set_enabled(self, enabled: bool) -> None:
        """Switch heartbeats on or off; committed before it takes effect, so it survives."""
        if self._store is not None:
            value = "true" if enabled else "false"
            await self._store.write(lambda conn: gateway_state.set_value(conn, ENABLED_KEY, value))
        self.enabled = enabled

    def configure(self, settings: HeartbeatSettings) -> None:
        """Take new settings (a config write); a new cadence counts from now."""
        retime = settings.every_s != self.settings.every_s
        self.settings = settings
        if retime:
            self._retime = True
            self._poke.set()

    def schedule(self) -> dict[str, Any]:
        """Return the switch and the cadence as `status` and `health` show them."""
        return {
            "enabled": self.enabled,
            "every": format_every(self.every_s),
            "everyMs": self.every_s * 1000,
        }

    # -- beating ----------------------------------------------------------------------

    def request_beat(self) -> None:
        """Ask for a beat as soon as possible (`wake` with mode "now")."""
        self._wake_requested = True
        self._poke.set()

    async def run(self) -> None:
        """Beat on schedule and on request, until cancelled."""
        loop = asyncio.get_running_loop()
        next_due = loop.time() + self.every_s if self.every_s else None
        while True:
            delay = None if next_due is None else max(next_due - loop.time(), 0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._poke.wait()
            self._poke.clear()
            if self._retime:
                self._retime = False
                next_due = loop.time() + self.every_s if self.every_s else None
            if self._wake_requested:
                self._wake_requested = False
                await self.beat(BeatTrigger.WAKE)
            if next_due is not None and loop.time() >= next_due:
                # From now, not from the missed instant: a long sleep gives one beat.
                next_due = loop.time() + self.every_s
                if self.enabled:
                    await self.beat(BeatTrigger.SCHEDULED)

    async def beat(self, trigger: BeatTrigger = BeatTrigger.WAKE) -> dict[str, Any]:
        """Run one beat now, record it and announce it; return its HeartbeatEvent."""
        started = self._clock()
        if self._beating.locked():
            return self._record(self._skipped(started, "in-progress"))
        async with self._beating:
            event = await self._beat(trigger, started)
        return self._record(event)

    async def _beat(self, trigger: BeatTrigger, started: int) -> dict[str, Any]:
        settings = self.settings
        if not self.enabled:
            return self._skipped(started, "disabled")
        if trigger is BeatTrigger.SCHEDULED and settings.active_hours is not None:
            wall = wall_time(started, self._zone).time()
            if not settings.active_hours.contains(wall):
                return self._skipped(started, f"quiet-hours (active {settings.active_hours})")
        agent = self._agent
        if agent is None or not agent.available():
            return self._skipped(started, "no-agent")
        queued = self._system_events.peek() if self._system_events is not None else []
        message = self._message(queued)
        try:
            reply = await agent.heartbeat_turn(message)
        except TurnFailed as exc:
            return self._event(started, "failed", reason=str(exc))
        if self._system_events is not None and queued:
            await self._system_events.consume(len(queued))
        kind = classify_reply(reply, settings.ack_token)
        if kind is ReplyKind.EMPTY:
            return self._event(started, "ok-empty")
        if kind is ReplyKind.TOKEN:
            return self._event(started, "ok-token")
        target = settings.target
        where = {"to": target.to, "channel": target.channel}
        preview = reply.strip()[:_PREVIEW_CHARS]
        if self._delivery is None:
            return self._event(started, "failed", reason="nowhere to deliver", **where)
        try:
            await self._delivery.deliver(target, reply.strip(), label="heartbeat")
        except DeliveryError as exc:
            reason = f"delivery failed: {exc}"
            return self._event(started, "failed", reason=reason, preview=preview, **where)
        return self._event(started, "sent", preview=preview, **where)

    def _message(self, queued: list[dict[str, Any]]) -> str:
        prompt = self.settings.prompt or self._prompt_file() or DEFAULT_PROMPT
        prompt = prompt.replace("{token}", self.settings.ack_token)
        if not queued:
            return prompt
        lines = [prompt, "", "System events since the last heartbeat:"]
        lines += [f"- {event['text']}" for event in queued]
        return "\n".join(lines)

    def _prompt_file(self) -> str | None:
        if self._workspace is None:
            return None
        path = self._workspace / HEARTBEAT_FILE
        try:
            with path.open("rb") as handle:
                text = handle.read(_PROMPT_FILE_MAX_BYTES).decode("utf-8", errors="replace")
        except OSError:
            return None
        return text.strip() or None

    def _skipped(self, started: int, reason: str) -> dict[str, Any]:
        return self._event(started, "skipped", reason=reason)

    def _event(self, started: int, status: str, **fields: Any) -> dict[str, Any]:
        now = self._clock()
        event: dict[str, Any] = {"ts": now, "status": status}
        event.update({key: value for key, value in fields.items() if value is not None})
        event["durationMs"] = max(now - started, 0)
        return event

    def _record(self, event: dict[str, Any]) -> dict[str, Any]:
        self.last = event
        if event["status"] in ("failed",):
            logger.warning("heartbeat failed: %s", event.get("reason"))
        self._on_heartbeat(event)
        return event
