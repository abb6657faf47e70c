"""Automation on the agent side: agent turns for heartbeats and cron jobs, and their delivery.

`AgentTurns` runs one turn in a session of its own and waits for the reply: heartbeats in
`agent:main:heartbeat`, each isolated cron job in `agent:main:cron:<jobId>` (a fresh
transcript per run, so runs do not see each other; the last run's transcript stays there
to read). `ChannelDelivery` sends a reply through the channel layer's `send`, on every
channel alike: WebChat (`to` a session key: appended to its transcript and shown on open
pages) or a messaging platform (`to` a peer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from ..agents.run import RunStatus as AgentRunStatus
from ..agents.sessions import DEFAULT_AGENT_ID
from ..automation.delivery import DeliveryError, DeliveryTarget
from ..channels.base import ChannelError
from ..channels.runtime import SendRequest
from .agent_service import AgentService
from .channel_service import ChannelService
from .heartbeat import TurnFailed

__all__ = [
    "AgentTurns",
    "ChannelDelivery",
    "TurnInterrupted",
    "cron_session_key",
]

logger = logging.getLogger(__name__)

HEARTBEAT_SESSION_KEY: Final = f"agent:{DEFAULT_AGENT_ID}:heartbeat"
#: The heartbeat session starts a fresh transcript once it holds this many messages.
_HEARTBEAT_KEEP_MESSAGES: Final = 100

Agents = Callable[[], AgentService | None]


def cron_session_key(job_id: str) -> str:
    """Return the session an isolated job runs in."""
    return f"agent:{DEFAULT_AGENT_ID}:cron:{job_id}"


class TurnInterrupted(TurnFailed):
    """The turn was aborted (the gateway is stopping, or someone aborted the session)."""


class AgentTurns:
    """Run one agent turn in a session and wait for its reply."""

    def __init__(self, agents: Agents) -> None:
        """Use the agent service `agents()` returns (None until the store is open)."""
        self._agents = agents

    def available(self) -> bool:
        """Whether an agent can answer."""
        return self._agents() is not None

    async def heartbeat_turn(self, message: str) -> str:
        """Ask in the heartbeat session and return the reply."""
        service = self._service()
        record = service.sessions.get(HEARTBEAT_SESSION_KEY)
        fresh = record is not None and record.message_count >= _HEARTBEAT_KEEP_MESSAGES
        return await self.turn(HEARTBEAT_SESSION_KEY, message, fresh=fresh)

    async def turn(
        self, session_key: str, message: str, *, fresh: bool, timeout_s: float | None = None
    ) -> str:
        """Run `message` in `session_key` (first emptying it when `fresh`); return the reply.

        Raises:
            TurnInterrupted: the run was aborted.
            TurnFailed: the run failed or timed out.
        """
        service = self._service()
        record = await service.sessions.ensure(session_key)
        if fresh and record.message_count and not service.runs.active_for(session_key):
            record = await service.sessions.reset(session_key) or record
        timeout = timeout_s or service.settings.timeout_s
        try:
            run = await service.start_run(record, message, service.new_run_id(), timeout)
        except RuntimeError:
            if service.runs.stopping:  # the gateway began to stop while the turn started
                raise TurnInterrupted("the gateway is stopping") from None
            raise
        await run.done.wait()
        if run.status is AgentRunStatus.OK:
            return run.text
        if run.status is AgentRunStatus.ABORTED:
            raise TurnInterrupted("the agent run was aborted")
        raise TurnFailed(run.error or run.summary())

    def _service(self) -> AgentService:
        service = self._agents()
        if service is None:
            raise TurnFailed("no agent: the gateway runs without a state store")
        return service


class ChannelDelivery:
    """Deliver to a channel (WebChat, Telegram, ...) through the channel layer's `send`."""

    def __init__(self, channels: ChannelService) -> None:
        self._channels = channels

    async def deliver(self, target: DeliveryTarget, text: str, *, label: str) -> None:
        """Send `text` to peer `target.to` on `target.channel` (its default account).

        Raises:
            DeliveryError: the channel refused or the send failed after its retries.
        """
        request = SendRequest(to=target.to, text=text, channel=target.channel, label=label)
        try:
            await self._channels.send(request)
        except ChannelError as exc:
            raise DeliveryError(f"{target}: {exc}") from exc
