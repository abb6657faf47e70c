"""Route commands to live plugins and run them there (control-plane spec §2.9, §4).

A command arrives through `submit` (from the control link); it is routed to the newest
live plugin that serves its target, or queued in state.db until one registers.

Invariants:
- Persist before ack: every state change is committed by the `CommandService` before the
  acknowledgement that reports it is returned or the plugin is asked to run it.
- At most `max_in_flight` commands run at one plugin connection. A slot is taken from the
  moment a dispatch is decided (before its `accepted` state is committed) until the plugin
  answers, so submits and pumps running during each other's commits cannot overfill it.
- A command whose plugin leaves mid-call is re-queued (or failed) by `plugin_left`, never
  by the call that noticed the disconnect, so it is handled exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

from ..commands import (
    Command,
    CommandError,
    CommandService,
    InvalidCommand,
    ack_payload,
    execution_timeout_ms,
    parse_command,
)
from ..protocol.ipc.frames import IpcError
from .registry import PluginRegistry, PluginSession

__all__ = ["MAX_IN_FLIGHT_PER_PLUGIN", "CommandRouter", "IntegrationRoutes"]

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT_PER_PLUGIN: Final = 8
EXPIRY_INTERVAL_S: Final = 1.0
PRUNE_EVERY_TICKS: Final = 600  # expiry ticks between prunes of finished records


class IntegrationRoutes(Protocol):
    """What the router asks about commands that target an integration (§2.9, §6)."""

    def owner(self, integration_id: str) -> str | None:
        """Return the live plugin that owns an active integration, else None."""
        ...

    def admit(self, integration_id: str, name: str, params: dict[str, Any]) -> CommandError | None:
        """Return why the integration refuses this command, or None."""
        ...

    def timeout_ms(self, integration_id: str, name: str) -> int | None:
        """Return the manifest's timeout for the command, if it declares one."""
        ...


class CommandRouter:
    """Move commands between the command queue and the plugins that run them."""

    def __init__(
        self,
        commands: CommandService,
        registry: PluginRegistry,
        integrations: IntegrationRoutes,
        *,
        clock: Callable[[], int],
        hub_clock: Callable[[], int],
        max_in_flight: int = MAX_IN_FLIGHT_PER_PLUGIN,
    ) -> None:
        """Route with `registry`; `clock` stamps acks, `hub_clock` decides deadlines."""
        self.commands = commands
        self._registry = registry
        self._integrations = integrations
        self._clock = clock
        self._hub_clock = hub_clock
        self._max_in_flight = max_in_flight
        # commandId -> plugin connection id, from the moment a dispatch is decided until
        # the plugin answers; the in-flight cap counts these.
        self._running: dict[str, str] = {}
        # commandId -> plugin connection id while a submit holds a slot across its commit.
        self._held: dict[str, str] = {}
        self._load: Counter[str] = Counter()  # connection id -> entries in _running + _held
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.Task[None] | None = None

    async def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Load the queue from state.db and start expiring queued commands.

        Args:
            spawn: Starts the expiry loop; the gateway passes its task group's.
        """
        recovered = await self.commands.load_on_start()
        if recovered:
            logger.info("recovered %d command records from state.db", len(recovered))
        self._expiry = spawn(self._expire_loop(), name="command-expiry")

    async def stop(self) -> None:
        """Stop expiring and end the calls still running at plugins."""
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- commands in ----------------------------------------------------------------

    async def submit(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Take one COMMAND and return its acknowledgement (spec §4.2).

        Raises:
            InvalidCommand: the frame has no readable commandId to answer.
        """
        now = self._clock()
        try:
            command, secrets = parse_command(frame, self._hub_clock())
        except InvalidCommand as exc:
            if exc.command_id is None:
                raise
            placeholder = Command(command_id=exc.command_id, name="", target_key="")
            decision = await self.commands.reject(placeholder, exc.to_error())
            return ack_payload(decision.command, now)
        kind, _, target = command.target_key.partition(":")
        if kind == "integration":
            refusal = self._integrations.admit(target, command.name, command.params)
            if refusal is not None:
                decision = await self.commands.reject(command, refusal)
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
                self._spawn(self.pump(command.target_key))  # the held slot is free again
        record = decision.command
        # A re-sent COMMAND gets the record's terminal ack verbatim, time included (§4.1).
        at = record.terminal_at if not decision.changed and record.terminal_at else now
        return ack_payload(record, at, decision.queue_position)

    def _route(self, target_key: str) -> PluginSession | None:
        kind, _, value = target_key.partition(":")
        if kind == "capability":
            return self._registry.for_capability(value)
        if kind == "plugin":
            return self._registry.by_name(value)
        owner = self._integrations.owner(value)
        return None if owner is None else self._registry.by_name(owner)

    # -- in-flight slots ------------------------------------------------------------

    def _spare(self, session: PluginSession) -> bool:
        return self._load[session.connection_id] < self._max_in_flight

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
        self._unload(session.connection_id)
        return True

    def _release(self, command_id: str, session: PluginSession) -> None:
        # Only our own entry: after a disconnect the command may be reserved by another plugin.
        if self._running.get(command_id) == session.connection_id:
            del self._running[command_id]
            self._unload(session.connection_id)

    def _unload(self, connection_id: str) -> None:
        self._load[connection_id] -= 1
        if not self._load[connection_id]:
            del self._load[connection_id]

    # -- running commands -----------------------------------------------------------

    async def pump(self, target_key: str) -> None:
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

    def pump_later(self, target_key: str) -> None:
        """Start queued commands of one target in a task of their own."""
        self._spawn(self.pump(target_key))

    def _launch(self, command: Command, session: PluginSession) -> None:
        if self._running.get(command.command_id) != session.connection_id:
            return  # the plugin left during the commit; plugin_left re-queued the command
        self._spawn(self._execute(command, session))

    async def _execute(self, command: Command, session: PluginSession) -> None:
        manifest_timeout_ms = None
        kind, _, target = command.target_key.partition(":")
        if kind == "integration":
            manifest_timeout_ms = self._integrations.timeout_ms(target, command.name)
        timeout_ms = execution_timeout_ms(command, self._hub_clock(), manifest_timeout_ms)
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
                return  # plugin_left re-queues it or fails it; nothing to record here
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

    # -- plugins come and go --------------------------------------------------------

    def plugin_registered(self, session: PluginSession) -> None:
        """Start what waits for the new plugin."""
        self._spawn(self._pump_all())

    def plugin_left(self, session: PluginSession) -> None:
        """Free the plugin's slots and re-queue (or fail) what it was running."""
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
        self._spawn(self._requeue([*interrupted, *held]))

    async def _requeue(self, command_ids: list[str]) -> None:
        for command in await self.commands.plugin_disconnected(command_ids):
            state = command.state.name.lower()
            logger.info("command %s is %s after its plugin left", command.command_id, state)
        await self._pump_all()

    async def _pump_all(self) -> None:
        for target_key in list(self.commands.by_target()):
            await self.pump(target_key)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _target_object(target_key: str) -> dict[str, str]:
    kind, _, value = target_key.partition(":")
    field = {"capability": "capability", "integration": "integrationId", "plugin": "plugin"}[kind]
    return {field: value}
