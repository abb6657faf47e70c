"""Route commands to live plugins and run them there (control-plane spec §2.9, §4).

A command arrives through `submit` (from the control link); it is routed to the newest
live plugin that serves its target, or queued in state.db until one registers.

A command costs no task of its own: a dispatch is decided in one synchronous step (a slot
taken, the `accepted` state handed to the group commit), `command.execute` is queued on the
plugin's socket by the commit listener that sees that state on disk, and the reply is handled
in its future's callback, which frees the slot, hands the outcome to the next commit and
decides the next dispatches there and then, so an outcome and the `accepted` state of the
command that takes its slot share one transaction (one fsync).

Invariants:
- Persist before ack: every state change is committed by the `CommandService` before the
  acknowledgement that reports it is returned, and `command.execute` is sent only by the
  commit listener, for the very record whose `accepted` state that commit wrote.
- At most `max_in_flight` (8, spec §2.9) commands per plugin connection from the dispatch
  decision to the reply. The slot is taken in the same synchronous step that decides the
  dispatch, before its `accepted` state is committed, and freed when the plugin answers or
  leaves, so concurrent submits and pumps cannot overfill it; the calls in flight at the
  plugin are a subset of these.
- A command whose plugin leaves mid-call, or before its `accepted` commit landed, is
  re-queued (or failed) by `plugin_left`, never by the reply that noticed the disconnect,
  so it is handled exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
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
from ..commands.queue import MAX_IN_FLIGHT_PER_PLUGIN
from ..protocol.ipc.frames import INTERNAL, PLUGIN_DISCONNECTED, IpcError
from .registry import PluginRegistry, PluginSession

__all__ = ["MAX_IN_FLIGHT_PER_PLUGIN", "CommandRouter", "IntegrationRoutes"]

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class _Starting:
    """A decided dispatch whose `accepted` state is not on disk yet."""

    record: Command
    session: PluginSession


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
        # commandId -> its dispatch, from the decision until its `accepted` commit lands.
        self._starting: dict[str, _Starting] = {}
        # commandId -> plugin connection id, from `command.execute` sent until the reply.
        self._running: dict[str, str] = {}
        self._load: Counter[str] = Counter()  # connection id -> entries in both of the above
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.Task[None] | None = None
        self._unsubscribe = commands.subscribe(self._committed)

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
        """Stop expiring and dispatching; calls still running end with their connections."""
        self._unsubscribe()
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
        # Decide and take the slot with no await between them (a duplicate takes none).
        decision, committed = self.commands.submit_nowait(
            command,
            secrets,
            live_route=route is not None,
            has_capacity=route is not None and self._spare(route),
        )
        if decision.dispatch:
            assert route is not None
            self._take_slot(decision.command, route, committed)
        await committed
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

    def _take_slot(
        self, record: Command, session: PluginSession, committed: asyncio.Future[None]
    ) -> None:
        """Hold a slot for a decided dispatch; the commit listener sends it."""
        self._starting[record.command_id] = _Starting(record, session)
        self._load[session.connection_id] += 1
        committed.add_done_callback(partial(self._start_failed, record.command_id, session))

    def _start_failed(
        self, command_id: str, session: PluginSession, committed: asyncio.Future[None]
    ) -> None:
        if not committed.cancelled() and committed.exception() is None:
            return  # committed: the listener has sent it
        starting = self._starting.get(command_id)
        if starting is not None and starting.session is session:
            del self._starting[command_id]
            self._unload(session.connection_id)
            # The book holds it `accepted` with no call: a store failure is fatal (restart).
            logger.error("command %s not dispatched: its accepted state did not commit", command_id)

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

    def pump(self, target_key: str) -> None:
        """Start queued commands of one target, in order, while a route has capacity."""
        while (route := self._route(target_key)) is not None and self._spare(route):
            head = self.commands.next_for(target_key)
            if head is None:
                return
            record, committed = self.commands.start_nowait(head.command_id)
            self._take_slot(record, route, committed)

    def pump_later(self, target_key: str) -> None:
        """Start queued commands of one target once the current callback has returned."""
        asyncio.get_running_loop().call_soon(self.pump, target_key)

    def _committed(self, records: Sequence[Command]) -> None:
        """Send `command.execute` for every decided dispatch this commit wrote as `accepted`."""
        if not self._starting:
            return
        for record in records:
            starting = self._starting.get(record.command_id)
            # The very record the dispatch decided on: not an older or a later state.
            if starting is None or starting.record is not record:
                continue
            del self._starting[record.command_id]
            self._running[record.command_id] = starting.session.connection_id
            self._send(record, starting.session)

    def _send(self, command: Command, session: PluginSession) -> None:
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
        reply = session.start_request("command.execute", params, timeout_ms / 1000)
        reply.add_done_callback(partial(self._answered, command.command_id, session))

    def _answered(
        self, command_id: str, session: PluginSession, reply: asyncio.Future[dict[str, Any]]
    ) -> None:
        """Record a reply's outcome, then fill the freed slot (one commit for both)."""
        result: Any = None
        error: CommandError | None = None
        failure = asyncio.CancelledError() if reply.cancelled() else reply.exception()
        if isinstance(failure, IpcError) and failure.code == PLUGIN_DISCONNECTED:
            return  # plugin_left re-queues it or fails it, and frees its slot
        if failure is None:
            result = reply.result().get("result")
        elif isinstance(failure, IpcError):
            error = CommandError(
                failure.code, failure.message, bool(failure.retryable), failure.details
            )
        else:
            logger.error("command.execute for %s failed: %r", command_id, failure)
            error = CommandError(INTERNAL, "the daemon failed to run the command", retryable=False)
        # The call is no longer in flight at the plugin, so its slot is free now.
        self._release(command_id, session)
        _, committed = self.commands.complete_nowait(command_id, result=result, error=error)
        committed.add_done_callback(_log_failed_commit)
        # Every target: the freed slot may serve another target of the same plugin.
        self._pump_all()

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
        self._pump_all()

    def plugin_left(self, session: PluginSession) -> None:
        """Free the plugin's slots and re-queue (or fail) what it was running."""
        connection = session.connection_id
        interrupted = [cid for cid, conn in self._running.items() if conn == connection]
        for command_id in interrupted:
            self._release(command_id, session)
        # Decided but not yet sent: its `accepted` commit will find no dispatch to send.
        starting = [
            cid
            for cid, entry in self._starting.items()
            if entry.session.connection_id == connection
        ]
        for command_id in starting:
            del self._starting[command_id]
            self._unload(connection)
        self._spawn(self._requeue([*interrupted, *starting]))

    async def _requeue(self, command_ids: list[str]) -> None:
        for command in await self.commands.plugin_disconnected(command_ids):
            state = command.state.name.lower()
            logger.info("command %s is %s after its plugin left", command.command_id, state)
        self._pump_all()

    def _pump_all(self) -> None:
        for target_key in list(self.commands.by_target()):
            self.pump(target_key)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _log_failed_commit(committed: asyncio.Future[None]) -> None:
    """Retrieve a commit's error nobody awaits (the group commit has logged it)."""
    if not committed.cancelled() and committed.exception() is not None:
        logger.debug("an outcome was not committed; it is not acked")


def _target_object(target_key: str) -> dict[str, str]:
    kind, _, value = target_key.partition(":")
    field = {"capability": "capability", "integration": "integrationId", "plugin": "plugin"}[kind]
    return {field: value}
