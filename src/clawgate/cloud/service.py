"""The daemon's side of the control link: commands in, acks and reports out (spec §3.9).

``CloudService`` is the ``LinkDelegate``: it turns COMMANDs into ``CommandRouter.submit``
calls, DESIRED_STATE into ``Reconciler.accept``, committed command transitions into
COMMAND_ACKs and finished passes into RECONCILIATION_REPORTs, and tells plugins and
operators when the link changes state.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..commands import Command, CommandService, InvalidCommand, ack_payload
from ..ipc import PluginRegistry
from ..ipc.plugin_list import describe_plugin
from ..ipc.router import CommandRouter
from ..protocol.control_link import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, MessageType
from .errors import DesiredStateError
from .hub_clock import HubClock
from .link import ControlLink, LinkState
from .reconciler import Reconciler
from .settings import LinkSettings

__all__ = ["CloudService"]

logger = logging.getLogger(__name__)

StatusListener = Callable[[dict[str, Any]], None]


class CloudService:
    """Own the control link and connect it to the command path and the reconciler."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        daemon_id: str,
        router: CommandRouter,
        commands: CommandService,
        reconciler: Reconciler,
        plugins: PluginRegistry,
        hub_clock: HubClock,
        clock: Callable[[], int],
        on_status: StatusListener,
    ) -> None:
        """Link this daemon to the hub; `on_status` hears every link state change."""
        self._daemon_id = daemon_id
        self._router = router
        self._commands = commands
        self._reconciler = reconciler
        self._plugins = plugins
        self._hub_clock = hub_clock
        self._clock = clock
        self._on_status = on_status
        self.link = ControlLink(settings, self)
        self._replying: set[str] = set()  # commandIds whose COMMAND is being answered
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Hook into commands and reports, and connect (the link's loop runs in `spawn`)."""
        self._unsubscribe = [
            self._commands.subscribe(self._commands_committed),
            self._reconciler.subscribe_reports(self._report),
        ]
        self.link.start(spawn)

    async def stop(self) -> None:
        """Close the link and finish pending writes."""
        await self.link.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        await self._hub_clock.flush()

    def status(self) -> dict[str, Any]:
        """Return the link state as operators see it, with the id the hub knows us by."""
        return {**self.link.status(), "daemonId": self._daemon_id}

    # -- LinkDelegate ------------------------------------------------------------------

    def register_payload(self) -> dict[str, Any]:
        """Describe this daemon for SERVICE_REGISTER (§3.5)."""
        plugins = [
            {**describe_plugin(session), "protocolVersion": session.protocol_version}
            for session in self._plugins.sessions()
        ]
        return {
            "daemonId": self._daemon_id,
            "daemonVersion": __version__,
            "protocolVersion": MAX_PROTOCOL_VERSION,
            "minProtocolVersion": MIN_PROTOCOL_VERSION,
            "hostname": socket.gethostname(),
            "platform": "darwin" if sys.platform == "darwin" else "linux",
            "arch": platform.machine() or "unknown",
            "plugins": plugins,
            "lastAppliedRevision": self._reconciler.applied_revision,
            "queueDepth": self._commands.depth(),
        }

    def clock_offset(self, offset_ms: int) -> None:
        """Use and persist the hub clock offset."""
        self._hub_clock.set_offset(offset_ms)

    async def command(self, payload: Any) -> dict[str, Any] | None:
        """Process a COMMAND; None when it has no readable commandId to answer (§3.3)."""
        if not isinstance(payload, dict):
            logger.warning("ignored a COMMAND whose payload is not an object")
            return None
        command_id = payload.get("commandId")
        replying = command_id if isinstance(command_id, str) else None
        if replying is not None:
            self._replying.add(replying)  # its first commit is acked by the reply, not twice
        try:
            return await self._router.submit(payload)
        except InvalidCommand as exc:
            logger.warning("ignored a COMMAND without a readable commandId: %s", exc)
            return None
        finally:
            if replying is not None:
                self._replying.discard(replying)

    async def desired_state(self, payload: Any) -> None:
        """Hand DESIRED_STATE to the reconciler."""
        try:
            outcome = await self._reconciler.accept(payload)
        except DesiredStateError as exc:
            logger.warning("ignored an unusable DESIRED_STATE: %s", exc)
            return
        if not outcome.accepted:
            report = self._reconciler.resend_report()
            if report is not None:
                self.link.send(MessageType.RECONCILIATION_REPORT, report)

    def unsent_acks(self) -> list[dict[str, Any]]:
        """Return terminal acks not yet written to a link, oldest first."""
        records = sorted(self._commands.book.unacked(), key=lambda c: c.terminal_at or 0)
        return [ack_payload(record, record.terminal_at or record.updated_at) for record in records]

    async def ack_sent(self, command_id: str) -> None:
        """Record that a terminal ack reached a connected link."""
        await self._commands.mark_ack_sent(command_id)

    def last_report(self) -> dict[str, Any] | None:
        """Return the last report for the re-send after SERVICE_ACK."""
        return self._reconciler.last_report

    def state_changed(self, state: LinkState, since: float, session_id: str | None) -> None:
        """Tell plugins (``cloud.status``) and operators about the new link state."""
        status = self.status()
        for session in self._plugins.sessions():
            session.send_event("cloud.status", status)
        self._on_status(status)

    # -- hooks -------------------------------------------------------------------------

    def _commands_committed(self, records: Sequence[Command]) -> None:
        """Ack every committed transition, except the one a COMMAND reply is about to carry."""
        book = self._commands.book
        now = self._clock()
        for record in records:
            if record.command_id in self._replying or (record.terminal and record.ack_sent):
                continue  # answered by the reply, or only the ackSent flag was written
            position = book.queue_position(record.command_id)
            self.link.send(MessageType.COMMAND_ACK, ack_payload(record, now, position))

    def _report(self, report: dict[str, Any]) -> None:
        self.link.send(MessageType.RECONCILIATION_REPORT, report)
