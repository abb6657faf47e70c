"""The gateway's side of the control link: commands in, acks and reports out (spec §3.9).

``CloudService`` is the ``LinkDelegate``: it turns COMMANDs into ``PluginHost.submit`` calls,
DESIRED_STATE into ``Reconciler.accept``, committed command transitions into COMMAND_ACKs and
finished passes into RECONCILIATION_REPORTs, and tells plugins and operators when the link
changes state.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..cloud.errors import DesiredStateError
from ..cloud.link import ControlLink, LinkState
from ..cloud.settings import LinkSettings
from ..commands import Command, InvalidCommand, ack_payload
from ..protocol.control_link import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, MessageType
from ..protocol.events import EventGate
from ..store import gateway_state
from .plugins import OFFSET_KEY

if TYPE_CHECKING:
    from .plugins import PluginHost
    from .server import GatewayServer

__all__ = ["CloudService"]

logger = logging.getLogger(__name__)


class CloudService:
    """Own the control link and connect it to the command path and the reconciler."""

    def __init__(self, gateway: GatewayServer, host: PluginHost, settings: LinkSettings) -> None:
        self._gateway = gateway
        self._host = host
        self.link = ControlLink(settings, self)
        self._tasks: set[asyncio.Task[None]] = set()
        self._replying: set[str] = set()  # commandIds whose COMMAND is being answered

    async def start(self) -> None:
        """Restore the hub clock offset, hook into commands and reports, and connect."""
        host = self._host  # (PluginHost.start restored the hub clock offset)
        host.hub_managed = True
        host.cloud_status = self.status
        host.commands.subscribe(self._commands_committed)
        host.reconciler.on_report = self._report
        self.link.start()

    async def stop(self) -> None:
        """Close the link and finish pending writes."""
        await self.link.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """Return the link state as plugins and operators see it."""
        return self.link.status()

    # -- LinkDelegate ------------------------------------------------------------------

    def register_payload(self) -> dict[str, Any]:
        """Describe this daemon for SERVICE_REGISTER (§3.5)."""
        host = self._host
        plugins = [
            {
                "name": session.name,
                "version": session.version,
                "protocolVersion": session.protocol_version,
                "capabilities": list(session.capabilities),
                "connectedAt": entry["connectedAt"],
            }
            for session, entry in zip(host.ipc.registry.sessions(), host.plugin_list(), strict=True)
        ]
        return {
            "daemonId": host.commands_daemon_id,
            "daemonVersion": __version__,
            "protocolVersion": MAX_PROTOCOL_VERSION,
            "minProtocolVersion": MIN_PROTOCOL_VERSION,
            "hostname": socket.gethostname(),
            "platform": "darwin" if sys.platform == "darwin" else "linux",
            "arch": platform.machine() or "unknown",
            "plugins": plugins,
            "lastAppliedRevision": host.reconciler.applied_revision,
            "queueDepth": host.commands.depth(),
        }

    def clock_offset(self, offset_ms: int) -> None:
        """Use and persist the hub clock offset."""
        self._host.clock_offset_ms = offset_ms
        store = self._gateway.store
        if store is not None:
            value = str(offset_ms)
            task = asyncio.create_task(
                store.write(lambda c: gateway_state.set_value(c, OFFSET_KEY, value))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
            return await self._host.submit(payload)
        except InvalidCommand as exc:
            logger.warning("ignored a COMMAND without a readable commandId: %s", exc)
            return None
        finally:
            if replying is not None:
                self._replying.discard(replying)

    async def desired_state(self, payload: Any) -> None:
        """Hand DESIRED_STATE to the reconciler."""
        try:
            outcome = await self._host.reconciler.accept(payload)
        except DesiredStateError as exc:
            logger.warning("ignored an unusable DESIRED_STATE: %s", exc)
            return
        if not outcome.accepted:
            report = self._host.reconciler.resend_report()
            if report is not None:
                self.link.send(MessageType.RECONCILIATION_REPORT, report)

    def unsent_acks(self) -> list[dict[str, Any]]:
        """Return terminal acks not yet written to a link, oldest first."""
        records = sorted(self._host.commands.book.unacked(), key=lambda c: c.terminal_at or 0)
        return [ack_payload(record, record.terminal_at or record.updated_at) for record in records]

    async def ack_sent(self, command_id: str) -> None:
        """Record that a terminal ack reached a connected link."""
        await self._host.commands.mark_ack_sent(command_id)

    def last_report(self) -> dict[str, Any] | None:
        """Return the last report for the re-send after SERVICE_ACK."""
        return self._host.reconciler.last_report

    def state_changed(self, state: LinkState, since: float, session_id: str | None) -> None:
        """Tell plugins (``cloud.status``) and operators about the new link state."""
        self._host.announce_cloud_status()
        self._gateway.broadcaster.broadcast("cloud.status", self.status(), EventGate.READ)

    # -- hooks -------------------------------------------------------------------------

    def _commands_committed(self, records: Sequence[Command]) -> None:
        """Ack every committed transition, except the one a COMMAND reply is about to carry."""
        book = self._host.commands.book
        now = self._gateway.now_ms()
        for record in records:
            if record.command_id in self._replying or (record.terminal and record.ack_sent):
                continue  # answered by the reply, or only the ackSent flag was written
            position = book.queue_position(record.command_id)
            self.link.send(MessageType.COMMAND_ACK, ack_payload(record, now, position))

    def _report(self, report: dict[str, Any]) -> None:
        self.link.send(MessageType.RECONCILIATION_REPORT, report)
