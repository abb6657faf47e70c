"""The gateway's plugin side: the IPC socket, command routing and the offline queue.

Commands arrive through `submit` (the control link will call it); each is routed to a
live plugin (spec §2.9) or queued in state.db until one registers, and every state
change is committed before the acknowledgement that reports it is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .. import __version__
from ..cloud.desired import schema_issues
from ..cloud.errors import RouteRejected
from ..cloud.reconciler import Reconciler
from ..commands import (
    Command,
    CommandBook,
    CommandError,
    CommandService,
    InvalidCommand,
    ack_payload,
    execution_timeout_ms,
    parse_command,
)
from ..ipc import Handler, IpcError, IpcServer, PluginSession
from ..ipc.frames import INVALID_PARAMS
from ..store import StateStore, gateway_state

if TYPE_CHECKING:
    from .server import GatewayServer

__all__ = ["PluginHost", "PluginSettings"]

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT_PER_PLUGIN: Final = 8
EXPIRY_INTERVAL_S: Final = 1.0
#: Where the control link keeps `serverTime - local time` (state.db meta record, §1.6).
OFFSET_KEY: Final = "hub_clock_offset_ms"
PRUNE_EVERY_TICKS: Final = 600  # expiry ticks between prunes of finished records


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """The `[ipc]`, `[queue]` and `[reconcile]` settings (control-plane spec §2.8, §4.3, §5.8)."""

    request_timeout_s: float = 30.0
    method_timeouts_s: Mapping[str, float] = field(default_factory=dict)
    queue_ttl_s: int = 300
    queue_max_total: int = 1000
    queue_max_per_target: int = 100
    drift_interval_s: float = 600.0


class PluginHost:
    """Own the IPC server and the command queue, and move commands between them."""

    def __init__(
        self,
        gateway: GatewayServer,
        socket_path: Path,
        store: StateStore,
        settings: PluginSettings | None = None,
        *,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self._gateway = gateway
        self._store = store
        settings = settings or PluginSettings()
        book = CommandBook(
            ttl_ms=settings.queue_ttl_s * 1000,
            max_total=settings.queue_max_total,
            max_per_target=settings.queue_max_per_target,
        )
        # Hub time (local time + the offset the control link measured, spec §3.4) decides
        # every command deadline.
        self.clock_offset_ms = 0
        self.commands = CommandService(store, book, clock=self.hub_now_ms)
        # The control link's state as plugins see it (`cloud.status`, spec §2.7).
        self.cloud_status: Callable[[], dict[str, Any]] = _no_cloud
        self.ipc = IpcServer(
            socket_path,
            daemon_id=store.daemon_id,
            daemon_version=__version__,
            request_timeout_s=settings.request_timeout_s,
            cloud_connected=lambda: bool(self.cloud_status()["connected"]),
            handlers={
                "status": self._plugin_status,
                "integration.list": self._plugin_integration_list,
                "integration.report": self._plugin_integration_report,
                # Other services' plugin-to-daemon methods (e.g. `agent.event`).
                **(handlers or {}),
            },
        )
        self.ipc.registry.on_register = self._on_register
        self.ipc.registry.on_disconnect = self._on_disconnect
        self.reconciler = Reconciler(
            store,
            self.ipc.registry,
            clock_ms=gateway.now_ms,
            drift_interval_s=settings.drift_interval_s,
            method_timeouts_s=dict(settings.method_timeouts_s),
        )
        self.commands.extra_secrets = self.reconciler.secret_values
        self.reconciler.on_active = lambda item_id: self._spawn(
            self._pump(f"integration:{item_id}")
        )
        # True while a control link owns the desired state (set by the link, spec §3).
        self.hub_managed = False
        # commandId -> plugin connection id, from the moment a dispatch is decided (before
        # its `accepted` state is committed) until the plugin answers. The in-flight cap
        # (§2.9) counts these, so submits and pumps running during each other's commits
        # cannot dispatch more than MAX_IN_FLIGHT_PER_PLUGIN to one plugin.
        self._running: dict[str, str] = {}
        # commandId -> plugin connection id while a submit holds a slot across its commit.
        self._held: dict[str, str] = {}
        self._load: Counter[str] = Counter()  # connection id -> entries in _running + _held
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.Task[None] | None = None

    def hub_now_ms(self) -> int:
        """Return hub time in epoch milliseconds."""
        return self._gateway.now_ms() + self.clock_offset_ms

    def announce_cloud_status(self) -> None:
        """Send the current ``cloud.status`` to every registered plugin."""
        status = self.cloud_status()
        for session in self.ipc.registry.sessions():
            session.send_event("cloud.status", status)

    async def start(self) -> None:
        """Load the queue from state.db, then open the socket."""
        # Hub time decides §4.5's expiries: restore the last measured offset first (§3.4).
        saved = await self._store.read(lambda conn: gateway_state.get_value(conn, OFFSET_KEY))
        if saved is not None:
            self.clock_offset_ms = int(saved)
        recovered = await self.commands.load_on_start()
        if recovered:
            logger.info("recovered %d command records from state.db", len(recovered))
        await self.reconciler.start()
        await self.ipc.start()
        self._expiry = asyncio.create_task(self._expire_loop(), name="command-expiry")

    async def stop(self) -> None:
        """Stop expiring, tell plugins we stop, close the socket, end running calls."""
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        await self.reconciler.stop()
        await self.ipc.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- commands in ----------------------------------------------------------------

    async def submit(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Take one COMMAND and return its acknowledgement (spec §4.2)."""
        now = self._gateway.now_ms()
        try:
            command, secrets = parse_command(frame, self.hub_now_ms())
        except InvalidCommand as exc:
            if exc.command_id is None:
                raise
            placeholder = Command(command_id=exc.command_id, name="", target_key="")
            decision = await self.commands.reject(placeholder, exc.to_error())
            return ack_payload(decision.command, now)
        kind, _, target = command.target_key.partition(":")
        if kind == "integration":
            try:
                self._check_integration_command(target, command.name, command.params)
            except RouteRejected as exc:
                decision = await self.commands.reject(command, exc.error)
                return ack_payload(decision.command, now)
        route = self._route(command.target_key)
        # A slot is held for the command during the commit below, while other submits and
        # pumps run. It is held apart from `_running`: a pump may start this very command
        # (queued behind others) before the commit returns, under its own reservation.
        # A known commandId is a duplicate and holds none.
        slot = None
        known = self.commands.book.get(command.command_id) is not None
        if route is not None and self._spare(route) and not known:
            slot = route
            self._hold(command.command_id, slot)
        try:
            decision = await self.commands.submit(
                command, secrets, live_route=route is not None, has_capacity=slot is not None
            )
        finally:
            # False when the plugin left during the commit: its disconnect re-queues it.
            still_held = slot is not None and self._unhold(command.command_id, slot)
        if slot is not None:
            if decision.dispatch and still_held:
                self._reserve(command.command_id, slot)
                self._launch(decision.command, slot)
            elif not decision.dispatch:
                self._spawn(self._pump(command.target_key))  # the held slot is free again
        record = decision.command
        # A re-sent COMMAND gets the record's terminal ack verbatim, time included (§4.1).
        at = record.terminal_at if not decision.changed and record.terminal_at else now
        return ack_payload(record, at, decision.queue_position)

    def _route(self, target_key: str) -> PluginSession | None:
        kind, _, value = target_key.partition(":")
        registry = self.ipc.registry
        if kind == "capability":
            return registry.for_capability(value)
        if kind == "plugin":
            return registry.by_name(value)
        owner = self.reconciler.integration_owner(value)
        return None if owner is None else registry.by_name(owner)

    def _check_integration_command(
        self, integration_id: str, name: str, params: dict[str, Any]
    ) -> None:
        """Refuse what the integration's manifest refuses (§2.9, §6 ``params_schema``)."""
        spec = self.reconciler.check_command(integration_id, name)
        if spec.params_schema is None:
            return
        issues = schema_issues(spec.params_schema, params, "params", ())
        if issues:
            message = f"params of {name} do not match its schema: {issues[0]['message']}"
            error = CommandError(INVALID_PARAMS, message, False, {"errors": issues})
            raise RouteRejected(error)

    def _spare(self, session: PluginSession) -> bool:
        return self._load[session.connection_id] < MAX_IN_FLIGHT_PER_PLUGIN

    def _reserve(self, command_id: str, session: PluginSession) -> None:
        self._running[command_id] = session.connection_id
        self._load[session.connection_id] += 1

    def _hold(self, command_id: str, session: PluginSession) -> None:
        self._held[command_id] = session.connection_id
        self._load[session.connection_id] += 1

    def _unhold(self, command_id: str, session: PluginSession) -> bool:
        if self._held.get(command_id) != session.connection_id:
            return False
        del self._held[command_id]
        self._load[session.connection_id] -= 1
        if not self._load[session.connection_id]:
            del self._load[session.connection_id]
        return True

    def _release(self, command_id: str, session: PluginSession) -> None:
        # Only our own entry: after a disconnect the command may be reserved by another plugin.
        if self._running.get(command_id) == session.connection_id:
            del self._running[command_id]
            self._load[session.connection_id] -= 1
            if not self._load[session.connection_id]:
                del self._load[session.connection_id]

    async def _pump(self, target_key: str) -> None:
        """Start queued commands of one target, in order, while a route has capacity."""
        while (route := self._route(target_key)) is not None and self._spare(route):
            head = self.commands.next_for(target_key)
            if head is None:
                return
            self._reserve(head.command_id, route)
            try:
                started = await self.commands.start(head.command_id)
            except BaseException:
                self._release(head.command_id, route)
                raise
            self._launch(started, route)

    def _launch(self, command: Command, session: PluginSession) -> None:
        if self._running.get(command.command_id) != session.connection_id:
            return  # the plugin left during the commit; _on_disconnect re-queued the command
        task = asyncio.create_task(self._execute(command, session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, command: Command, session: PluginSession) -> None:
        manifest_timeout_ms = None
        kind, _, target = command.target_key.partition(":")
        if kind == "integration":
            with contextlib.suppress(RouteRejected):
                manifest_timeout_ms = self.reconciler.check_command(target, command.name).timeout_ms
        timeout_ms = execution_timeout_ms(command, self.hub_now_ms(), manifest_timeout_ms)
        params: dict[str, Any] = {
            "commandId": command.command_id,
            "name": command.name,
            "target": _target_object(command.target_key),
            "params": command.params,
            "attempt": command.attempt,
            "timeoutMs": timeout_ms,
        }
        secrets = self.commands.secrets_for(command.command_id)
        if secrets:
            params["secrets"] = secrets
        if command.idempotency_key is not None:
            params["idempotencyKey"] = command.idempotency_key
        if command.expires_at is not None:
            params["expiresAt"] = command.expires_at
        result: Any = None
        error: CommandError | None = None
        try:
            payload = await session.request("command.execute", params, timeout_ms / 1000)
        except IpcError as exc:
            if exc.code == "PLUGIN_DISCONNECTED":
                return  # _on_disconnect re-queues it or fails it; nothing to record here
            error = CommandError(exc.code, exc.message, bool(exc.retryable), exc.details)
        else:
            result = payload.get("result")
        finally:
            # The call is no longer in flight at the plugin, so its slot is free now: the
            # next dispatch's `accepted` state then shares the commit of this outcome.
            self._release(command.command_id, session)
        # Every target: the freed slot may serve another target of the same plugin.
        await asyncio.gather(
            self.commands.complete(command.command_id, result=result, error=error),
            self._pump_all(),
        )

    async def _expire_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(EXPIRY_INTERVAL_S)
            for command in await self.commands.expire_due():
                logger.info("command %s expired in the queue", command.command_id)
            ticks += 1
            if ticks % PRUNE_EVERY_TICKS == 0:
                # Records outlive every re-send by 24 h (§4.1), then go.
                gone = await self.commands.prune()
                if gone:
                    logger.info("pruned %d finished command records", len(gone))

    # -- plugins --------------------------------------------------------------------

    def _on_register(self, session: PluginSession) -> None:
        logger.info("plugin %s registered (%s)", session.name, ", ".join(session.capabilities))
        session.send_event("cloud.status", self.cloud_status())
        self._spawn(self._pump_all())
        self.reconciler.plugin_registered(session)

    def _on_disconnect(self, session: PluginSession) -> None:
        logger.info("plugin %s disconnected", session.name)
        interrupted = [
            command_id
            for command_id, connection in self._running.items()
            if connection == session.connection_id
        ]
        for command_id in interrupted:
            self._release(command_id, session)
        held = [cid for cid, conn in self._held.items() if conn == session.connection_id]
        for command_id in held:
            # Mid-commit submits: an `accepted` one is re-queued like a running one.
            self._unhold(command_id, session)
        interrupted += held
        self._spawn(self._requeue(interrupted))
        self.reconciler.plugin_disconnected(session)

    async def _requeue(self, command_ids: list[str]) -> None:
        for command in await self.commands.plugin_disconnected(command_ids):
            state = command.state.name.lower()
            logger.info("command %s is %s after its plugin left", command.command_id, state)
        await self._pump_all()

    async def _pump_all(self) -> None:
        for target_key in list(self.commands.by_target()):
            await self._pump(target_key)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _plugin_status(
        self, session: PluginSession, params: dict[str, Any]
    ) -> dict[str, Any]:
        gateway = self._gateway
        return {
            "daemonId": self.commands_daemon_id,
            "daemonVersion": __version__,
            "uptimeMs": gateway.uptime_ms(),
            "cloud": self.cloud_status(),
            "plugins": self.plugin_list(),
            "queue": {"depth": self.commands.depth(), "byTarget": self.commands.by_target()},
            "reconcile": self.reconciler.status(),
        }

    async def _plugin_integration_list(
        self, session: PluginSession, params: dict[str, Any]
    ) -> dict[str, Any]:
        owned_only = params.get("ownedOnly", False)
        if not isinstance(owned_only, bool):
            raise IpcError(INVALID_PARAMS, "ownedOnly must be true or false")
        view = self.reconciler.ledger_view(session.name if owned_only else None)
        for row in view["integrations"]:
            if "error" in row:
                row["lastError"] = row.pop("error")  # the §2.5 name (reports say `error`)
        return view

    async def _plugin_integration_report(
        self, session: PluginSession, params: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.reconciler.plugin_report(session, params)

    @property
    def commands_daemon_id(self) -> str:
        """The daemon id of this home (from state.db)."""
        return self._gateway.store.daemon_id if self._gateway.store else ""

    def plugin_list(self) -> list[dict[str, Any]]:
        """Describe every live plugin."""
        return [
            {
                "name": session.name,
                "version": session.version,
                "capabilities": list(session.capabilities),
                "connectedAt": _rfc3339(session.connected_at),
            }
            for session in self.ipc.registry.sessions()
        ]


def _no_cloud() -> dict[str, Any]:
    return {"connected": False, "state": "disabled", "since": None}


def _rfc3339(seconds: float) -> str:
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _target_object(target_key: str) -> dict[str, str]:
    kind, _, value = target_key.partition(":")
    field = {"capability": "capability", "integration": "integrationId", "plugin": "plugin"}[kind]
    return {field: value}
