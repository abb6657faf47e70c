"""The reconciliation engine: converge local integrations to the desired state (spec §5).

One task runs passes (§5.6). Every trigger (a new revision, a due retry, drift, a plugin
report, a plugin registering) marks the engine dirty and wakes the task; a burst of triggers
costs at most one extra pass. Each pass walks removals, then the desired entries in
dependency order, calls the owning plugin over IPC for the steps ``plan.steps_for`` returns,
writes every ledger change to state.db as it happens, and ends with a report.

Secret values stay in ``self._desired.secrets`` (memory only) and leave the process only as
the ``secrets`` param of ``integration.install``/``integration.configure`` (§8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from ..commands.queue import redact
from ..ipc import IpcError, PluginRegistry, PluginSession
from ..protocol.ipc.frames import INVALID_PARAMS, METHOD_NOT_FOUND, NOT_FOUND, UNAVAILABLE
from ..protocol.timefmt import format_time_ms
from ..store import StateStore, ledger_repo
from .desired import EMPTY, DesiredEntry, DesiredState, parse_desired_state, secrets_digest
from .errors import (
    DEPENDENCY_NOT_READY,
    PLUGIN_DISCONNECTED,
    PLUGIN_OFFLINE,
    SECRETS_UNAVAILABLE,
    UNHEALTHY,
    ReconcileError,
    RouteRejected,
)
from .ledger import ItemStatus, LedgerItem
from .plan import (
    PluginInfo,
    Step,
    order_desired,
    order_removals,
    pick_owner,
    retry_delay_ms,
    steps_for,
)

__all__ = ["AcceptOutcome", "CommandSpecView", "Reconciler", "Trigger"]

logger = logging.getLogger(__name__)

DEFAULT_DRIFT_INTERVAL_S: Final = 600.0
_STEPS_NEEDING_SECRETS: Final = frozenset({Step.INSTALL, Step.UPGRADE, Step.CONFIGURE})
_REPORT_STATUSES: Final = frozenset({"active", "inactive", "error"})


class Trigger:
    """Why a pass ran (the report's ``trigger``, §3.5)."""

    DESIRED_STATE: Final = "desired_state"
    RETRY: Final = "retry"
    DRIFT: Final = "drift"
    PLUGINS: Final = "plugins"
    STARTUP: Final = "startup"
    RESEND: Final = "resend"


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    """What became of an incoming desired state (§5.1)."""

    revision: int
    accepted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CommandSpecView:
    """What the manifest says about one integration command: its timeout and params schema."""

    timeout_ms: int
    params_schema: dict[str, Any] | None


ReportCallback = Callable[[dict[str, Any]], None]


class Reconciler:
    """Own the ledger and the desired state, and run reconciliation passes."""

    def __init__(
        self,
        store: StateStore,
        registry: PluginRegistry,
        *,
        clock_ms: Callable[[], int],
        rng: random.Random | None = None,
        drift_interval_s: float = DEFAULT_DRIFT_INTERVAL_S,
        method_timeouts_s: dict[str, float] | None = None,
        on_active: Callable[[str], None] | None = None,
    ) -> None:
        """Reconcile through `registry`; `on_active(id)` hears of integrations going active."""
        self._store = store
        self._registry = registry
        self._now = clock_ms
        self._rng = rng or random.Random()
        self._drift_interval_ms = int(drift_interval_s * 1000)
        self._timeouts = method_timeouts_s or {}
        self._desired: DesiredState = EMPTY
        self._items: dict[str, LedgerItem] = {}
        self._sent_digests: dict[str, str] = {}
        self._secrets_lost: set[str] = set()  # owners said secretsLoaded: false (§5.4)
        self._digest_key = os.urandom(32)  # a new key each start (§5.2)
        self._plugin_versions: dict[str, str] = {}
        self._applied_revision = 0
        self._last_report: dict[str, Any] | None = None
        self._last_pass_at: int | None = None
        self._running = False
        self._wake = asyncio.Event()
        self._trigger: str | None = None
        self._drift_due: dict[str, int] = {}  # plugin name -> next drift check (ms)
        self._drift_found = False
        self._task: asyncio.Task[None] | None = None
        self._report_listeners: list[ReportCallback] = []
        # Called with an integration id when it becomes active: its queued commands may go.
        self._on_active = on_active

    def subscribe_reports(self, listener: ReportCallback) -> Callable[[], None]:
        """Call `listener` with every pass's report; return the unsubscribe function."""
        self._report_listeners.append(listener)
        return lambda: self._report_listeners.remove(listener)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Load the ledger and the last snapshot, then reconcile against them (§5.1).

        Args:
            spawn: Starts the pass loop; the gateway passes its task group's.
        """
        rows = await self._store.read(ledger_repo.load_items)
        self._items = {row.id: LedgerItem.from_row(row) for row in rows}
        snapshot = await self._store.read(lambda c: ledger_repo.get_record(c, "desired"))
        if snapshot is not None:
            self._desired = parse_desired_state(snapshot, with_secrets=False)
        self._applied_revision = (
            await self._store.read(lambda c: ledger_repo.get_record(c, "applied_revision")) or 0
        )
        self._last_report = await self._store.read(lambda c: ledger_repo.get_record(c, "report"))
        self._task = spawn(self._run(), name="reconciler")
        self._kick(Trigger.STARTUP)

    async def stop(self) -> None:
        """Stop the pass loop; a step in flight is abandoned, its item stays as recorded."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- inputs ------------------------------------------------------------------------

    async def accept(self, payload: Any) -> AcceptOutcome:
        """Take a DESIRED_STATE payload (§5.1).

        Raises:
            DesiredStateError: The snapshot as a whole is unusable (nothing changes).
        """
        incoming = parse_desired_state(payload)
        current = self._desired
        if incoming.revision < current.revision:
            logger.info(
                "ignored desired state revision %d: revision %d is newer",
                incoming.revision,
                current.revision,
            )
            return AcceptOutcome(current.revision, False, "stale")
        changed = self._changed_entries(current, incoming)
        if incoming.revision > current.revision or changed:
            await self._store.write(
                lambda c: ledger_repo.set_record(c, "desired", incoming.snapshot())
            )
        self._desired = incoming
        for item_id in changed:
            self._reset(item_id)
        if incoming.revision > current.revision:
            self._announce_changes(incoming.revision, changed)
            self._kick(Trigger.DESIRED_STATE)
        elif changed:
            self._kick(Trigger.DESIRED_STATE)
        return AcceptOutcome(incoming.revision, True, "accepted" if changed else "unchanged")

    def plugin_registered(self, session: PluginSession) -> None:
        """Reset the backoff of items the plugin can take, check drift, and pass (§2.10)."""
        self._plugin_versions[session.name] = session.version
        capabilities = set(session.capabilities)
        for item in self._items.values():
            entry = self._desired.entries.get(item.id)
            qualifies = entry is not None and set(entry.capabilities) <= capabilities
            mine = item.owner == session.name or (item.owner is None and qualifies)
            if mine and item.status in (ItemStatus.PENDING, ItemStatus.ERROR):
                self._reset(item.id)
        self._drift_due[session.name] = 0
        self._kick(Trigger.PLUGINS)

    def plugin_disconnected(self, session: PluginSession) -> None:
        """Report the plugin offline (§2.10 step 3)."""
        self._drift_due.pop(session.name, None)
        self._kick(Trigger.PLUGINS)

    async def plugin_report(self, session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ``integration.report`` from a plugin (§2.5)."""
        item_id = params.get("integrationId")
        status = params.get("status")
        if not isinstance(item_id, str) or status not in _REPORT_STATUSES:
            raise IpcError(
                INVALID_PARAMS,
                "integration.report needs integrationId and a status of active, inactive or error",
            )
        item = self._items.get(item_id)
        if item is None or item.owner != session.name:
            raise IpcError(
                NOT_FOUND, f"integration {item_id} is not owned by plugin {session.name}"
            )
        item.active = status == "active"
        if status == "error":
            detail = params.get("error")
            message = detail.get("message") if isinstance(detail, dict) else detail
            item.status = ItemStatus.ERROR
            item.error = ReconcileError(
                UNHEALTHY, self._redact(str(message or "the plugin reported an error")), True
            )
            item.next_attempt_at = self._now()
        else:
            item.status = item.settled_status()
        item.updated_at = self._now()
        await self._save(item)
        self._drift_found = True
        self._kick(Trigger.DRIFT)
        return {"accepted": True}

    def resend_report(self) -> dict[str, Any] | None:
        """Return the last report marked as a re-send (§3.4 step 4), if there is one."""
        if self._last_report is None:
            return None
        return {**self._last_report, "trigger": Trigger.RESEND}

    # -- views -------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision of the desired state held."""
        return self._desired.revision

    @property
    def applied_revision(self) -> int:
        """The revision of the last completed, non-superseded pass."""
        return self._applied_revision

    @property
    def last_report(self) -> dict[str, Any] | None:
        """The most recent report."""
        return self._last_report

    def secret_values(self) -> list[str]:
        """Every integration secret value held, for redaction."""
        return self._desired.secret_values()

    def status(self) -> dict[str, Any]:
        """Return ``reconcile`` of the IPC ``status`` result (§2.5)."""
        out: dict[str, Any] = {
            "revision": self._desired.revision,
            "running": self._running,
            "converged": self._converged(),
        }
        if self._last_pass_at is not None:
            out["lastPassAt"] = format_time_ms(self._last_pass_at)
        return out

    def ledger_view(self, owner: str | None = None) -> dict[str, Any]:
        """Return the ledger as ``integration.list`` shows it (§2.5)."""
        rows = []
        for item in self._items.values():
            if owner is not None and item.owner != owner:
                continue
            entry = self._desired.entries.get(item.id)
            row = self._entry_json(item, entry)
            row["enabled"] = entry.enabled if entry is not None else item.enabled
            rows.append(row)
        return {"revision": self._desired.revision, "integrations": rows}

    def check_command(self, integration_id: str, name: str) -> CommandSpecView:
        """Check a command for target ``{integrationId}`` against the desired state (§2.9).

        Raises:
            RouteRejected: ``NOT_FOUND``, ``METHOD_NOT_FOUND`` or ``UNAVAILABLE``.
        """
        entry = self._desired.entries.get(integration_id)
        if entry is None:
            error = ReconcileError(NOT_FOUND, f"no integration {integration_id} is desired", False)
            raise RouteRejected(error)
        if name not in entry.command_timeouts_ms:
            message = f"integration {integration_id} declares no command {name}"
            raise RouteRejected(ReconcileError(METHOD_NOT_FOUND, message, False))
        item = self._items.get(integration_id)
        failed = item is not None and item.status == ItemStatus.ERROR
        if not entry.enabled or entry.invalid is not None or failed:
            message = f"integration {integration_id} is disabled or in error; see its status"
            raise RouteRejected(ReconcileError(UNAVAILABLE, message, True))
        schema = entry.command_schemas.get(name)
        return CommandSpecView(entry.command_timeouts_ms[name], dict(schema) if schema else None)

    def integration_owner(self, integration_id: str) -> str | None:
        """Return the live owner of an active integration, else None (commands then queue)."""
        item = self._items.get(integration_id)
        if item is None or item.status != ItemStatus.ACTIVE or item.owner is None:
            return None
        return item.owner if self._registry.by_name(item.owner) is not None else None

    # -- the pass loop -----------------------------------------------------------------

    def _kick(self, trigger: str) -> None:
        if self._trigger is None:
            self._trigger = trigger
        self._wake.set()

    async def _run(self) -> None:
        while True:
            delay = self._next_wake_s()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._step_loop()
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:
                # A bug in one pass must not end reconciliation; the next trigger retries.
                logger.exception("reconciliation pass failed")

    async def _step_loop(self) -> None:
        """Run due drift checks, then one pass if anything asked for it."""
        now = self._now()
        await self._check_drift(now)
        trigger = self._trigger
        if trigger is None and self._retry_due(now):
            trigger = Trigger.RETRY
        if trigger is None:
            return
        self._trigger = None
        await self._pass(trigger)

    def _next_wake_s(self) -> float | None:
        times = [item.next_attempt_at for item in self._items.values() if item.next_attempt_at]
        times += self._drift_due.values()
        if not times:
            return None
        return max(0.0, (min(times) - self._now()) / 1000)

    def _retry_due(self, now: int) -> bool:
        return any(
            item.next_attempt_at is not None and item.next_attempt_at <= now
            for item in self._items.values()
        )

    async def _pass(self, trigger: str) -> None:
        desired = self._desired
        started = self._now()
        self._running = True
        try:
            await self._pass_steps(desired, trigger, started)
        finally:
            # Only now: a reader that sees `running` false also sees this pass's report.
            self._running = False

    async def _pass_steps(self, desired: DesiredState, trigger: str, started: int) -> None:
        superseded = False
        leaving = [
            item
            for item in self._items.values()
            if item.id not in desired.entries and item.status != ItemStatus.REMOVED
        ]
        for item_id in order_removals(leaving):
            if self._desired.revision > desired.revision:
                superseded = True
                break
            await self._remove(self._items[item_id])
        ordering = order_desired(desired.entries)
        for item_id in [] if superseded else ordering.apply:
            if self._desired.revision > desired.revision:
                superseded = True
                break
            entry = desired.entries[item_id]
            await self._converge(entry, ordering.broken.get(item_id), desired)
        finished = self._now()
        self._last_pass_at = finished
        drift = self._drift_found or trigger == Trigger.DRIFT
        self._drift_found = False
        applied = self._applied_revision if superseded else desired.revision
        report = self._report(desired, trigger, started, finished, drift, superseded)
        removed = [i.id for i in self._items.values() if i.status == ItemStatus.REMOVED]
        for item_id in removed:
            del self._items[item_id]

        def persist(conn: Any) -> None:
            ledger_repo.delete_items(conn, removed)
            ledger_repo.set_record(conn, "report", report)
            ledger_repo.set_record(conn, "applied_revision", applied)

        await self._store.write(persist)
        # Both change together, after the commit: a reader never sees one without the other.
        self._last_report = report
        self._applied_revision = applied
        logger.info(
            "reconciliation pass (%s) at revision %d: %s",
            trigger,
            desired.revision,
            "converged" if report["converged"] else "not converged",
        )
        if self._on_active is not None:
            # Queued commands of every active item may go now (also those that became
            # active through a plugin report or a drift check rather than a step).
            for item in self._items.values():
                if item.status == ItemStatus.ACTIVE:
                    self._on_active(item.id)
        for listener in list(self._report_listeners):
            listener(report)

    # -- one item ----------------------------------------------------------------------

    async def _converge(
        self, entry: DesiredEntry, broken: ReconcileError | None, desired: DesiredState
    ) -> None:
        item = self._items.get(entry.id)
        if item is None:
            item = self._items[entry.id] = LedgerItem(id=entry.id, updated_at=self._now())
        item.enabled = entry.enabled
        item.depends_on = entry.depends_on
        item.secret_fields = entry.secret_fields
        problem = entry.invalid or broken
        if problem is not None:
            await self._set(item, ItemStatus.ERROR, problem, retry=False)
            return
        if item.status == ItemStatus.ERROR and not self._due(item):
            return
        for dep in entry.depends_on:
            dependency = self._items.get(dep)
            if dependency is None or not dependency.in_target_status():
                error = ReconcileError(DEPENDENCY_NOT_READY, f"waiting for {dep} to be ready", True)
                await self._set(item, ItemStatus.PENDING, error, retry=False)
                return
        choice = pick_owner(entry, item, self._live_plugins())
        if choice.owner is None and item.installed and not self._steps(entry, item, desired):
            # Nothing to do: an offline owner only matters to an item that needs a step (§5.3).
            await self._set(item, item.settled_status(), None, retry=False)
            return
        if choice.owner is None:
            error = ReconcileError(
                PLUGIN_OFFLINE, f"no plugin that can host {entry.id} is connected", True
            )
            await self._set(item, ItemStatus.PENDING, error, retry=False)
            return
        if choice.remove_from is not None and not await self._move_away(item, choice.remove_from):
            return
        if item.owner != choice.owner:
            # A new owner starts from nothing: what the old one held is not its state.
            item.owner = choice.owner
            item.installed_version = item.spec_hash = item.config_hash = None
            item.active = False
        secrets = dict(desired.secrets.get(entry.id, {}))
        digest = secrets_digest(self._digest_key, secrets) if secrets else None
        steps = self._steps(entry, item, desired)
        missing = [name for name in entry.required_secrets if name not in secrets]
        if entry.id in self._secrets_lost and not secrets:
            missing = list(entry.secret_fields)  # the owner lost values we do not hold either
        if missing and _STEPS_NEEDING_SECRETS.intersection(steps):
            error = ReconcileError(
                SECRETS_UNAVAILABLE,
                f"{entry.id} needs secret values the daemon does not hold ({', '.join(missing)});"
                " they arrive with the next desired state from the hub",
                True,
            )
            await self._set(item, ItemStatus.PENDING, error, retry=False)
            return
        for step in steps:
            try:
                await self._apply(step, entry, item, secrets, desired.revision)
            except IpcError as exc:
                await self._step_failed(item, step, exc, sent=secrets.values())
                current = self._desired
                changed = current.entries.get(entry.id) != entry
                if changed or dict(current.secrets.get(entry.id, {})) != secrets:
                    # The entry changed while the step ran: the change makes it due (§5.7).
                    self._reset(entry.id)
                return
            if step in _STEPS_NEEDING_SECRETS:
                self._secrets_lost.discard(entry.id)
                if digest is not None:
                    self._sent_digests[entry.id] = digest
        item.applied_revision = desired.revision
        await self._set(item, item.settled_status(), None, retry=False)

    def _steps(self, entry: DesiredEntry, item: LedgerItem, desired: DesiredState) -> list[Step]:
        secrets = desired.secrets.get(entry.id)
        digest = secrets_digest(self._digest_key, secrets) if secrets else None
        secrets_changed = entry.id in self._secrets_lost or (
            digest is not None and self._sent_digests.get(entry.id) != digest
        )
        return steps_for(entry, item, secrets_changed=secrets_changed)

    async def _apply(
        self,
        step: Step,
        entry: DesiredEntry,
        item: LedgerItem,
        secrets: dict[str, str],
        revision: int,
    ) -> None:
        assert item.owner is not None
        params: dict[str, Any] = {"integrationId": entry.id}
        if step in (Step.INSTALL, Step.UPGRADE):
            params |= {
                "version": entry.version,
                "manifest": dict(entry.manifest),
                "config": dict(entry.config),
                "configHash": entry.config_hash,
                "revision": revision,
            }
            if step is Step.UPGRADE and item.installed_version is not None:
                params["previousVersion"] = item.installed_version
        elif step is Step.CONFIGURE:
            params |= {
                "version": entry.version,
                "config": dict(entry.config),
                "configHash": entry.config_hash,
            }
        if secrets and step in _STEPS_NEEDING_SECRETS:
            params["secrets"] = secrets
        method = "integration.install" if step is Step.UPGRADE else f"integration.{step.value}"
        await self._call(item.owner, method, params)
        item.last_action = step.value
        if step in (Step.INSTALL, Step.UPGRADE):
            item.installed_version = entry.version
            item.spec_hash = entry.spec_hash
            item.config_hash = entry.config_hash
        elif step is Step.CONFIGURE:
            item.config_hash = entry.config_hash
        elif step in (Step.ACTIVATE, Step.DEACTIVATE):
            item.active = step is Step.ACTIVATE
        item.updated_at = self._now()
        await self._save(item)

    async def _remove(self, item: LedgerItem) -> None:
        if item.status == ItemStatus.ERROR and not self._due(item):
            return
        if not item.installed or item.owner is None:
            await self._set(item, ItemStatus.REMOVED, None, retry=False)
            return
        if self._registry.by_name(item.owner) is None:
            error = ReconcileError(
                PLUGIN_OFFLINE, f"plugin {item.owner} must be connected to remove {item.id}", True
            )
            await self._set(item, ItemStatus.PENDING, error, retry=False)
            return
        try:
            await self._take_down(item, item.owner)
        except IpcError as exc:
            await self._step_failed(item, Step.REMOVE, exc)
            return
        self._sent_digests.pop(item.id, None)
        await self._set(item, ItemStatus.REMOVED, None, retry=False)

    async def _move_away(self, item: LedgerItem, previous: str) -> bool:
        """Remove ``item`` from its previous owner before a pinned one installs it."""
        if self._registry.by_name(previous) is None:
            return True  # offline: its copy is found and removed by a later drift check
        try:
            await self._take_down(item, previous)
        except IpcError as exc:
            await self._step_failed(item, Step.REMOVE, exc)
            return False
        return True

    async def _take_down(self, item: LedgerItem, owner: str) -> None:
        if item.active:
            await self._call(owner, "integration.deactivate", {"integrationId": item.id})
            item.active = False
            item.last_action = Step.DEACTIVATE.value
        version = item.installed_version or ""
        await self._call(
            owner, "integration.remove", {"integrationId": item.id, "version": version}
        )
        item.last_action = Step.REMOVE.value
        item.installed_version = item.spec_hash = item.config_hash = None

    async def _call(self, owner: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        session = self._registry.by_name(owner)
        if session is None:
            raise IpcError(PLUGIN_DISCONNECTED, f"plugin {owner} is not connected", retryable=True)
        return await session.request(method, params, self._timeouts.get(method))

    async def _step_failed(
        self, item: LedgerItem, step: Step, exc: IpcError, sent: Iterable[str] = ()
    ) -> None:
        # Redact what was sent in this call too: a newer desired state may have replaced it.
        hidden = [*self.secret_values(), *sent]
        error = ReconcileError(
            exc.code,
            str(redact(exc.message, hidden)),
            bool(exc.retryable),
            redact(exc.details, hidden) if exc.details is not None else None,
        )
        logger.warning("integration %s: %s failed: %s", item.id, step.value, error.code)
        if exc.code == PLUGIN_DISCONNECTED:
            # Interrupted, not failed: no attempt counted (§2.10); the owner's return retries it.
            await self._set(item, ItemStatus.PENDING, error, retry=False)
        else:
            await self._set(item, ItemStatus.ERROR, error, retry=error.retryable)

    async def _set(
        self, item: LedgerItem, status: ItemStatus, error: ReconcileError | None, *, retry: bool
    ) -> None:
        now = self._now()
        if retry:
            item.attempts += 1
            delay = retry_delay_ms(item.attempts, self._rng.uniform(0.8, 1.2))
            item.next_attempt_at = now + delay
        else:
            item.next_attempt_at = None
            if error is None:
                item.attempts = 0
        unchanged = item.status == status and item.error == error
        item.status = status
        item.error = error
        if not unchanged:
            item.updated_at = now
        await self._save(item)
        if status == ItemStatus.ACTIVE and not unchanged and self._on_active is not None:
            self._on_active(item.id)

    def _due(self, item: LedgerItem) -> bool:
        return item.next_attempt_at is not None and item.next_attempt_at <= self._now()

    def _reset(self, item_id: str) -> None:
        """Make an item due at once with no attempts (§5.7)."""
        item = self._items.get(item_id)
        if item is None:
            return
        item.attempts = 0
        item.next_attempt_at = None
        if item.status == ItemStatus.ERROR:
            item.status = ItemStatus.PENDING

    async def _save(self, item: LedgerItem) -> None:
        # The row is taken now, on the loop: the owner thread never reads a mutable item.
        row = item.to_row()
        await self._store.write(lambda c: ledger_repo.save_items(c, [row]))

    # -- drift -------------------------------------------------------------------------

    async def _check_drift(self, now: int) -> None:
        for name, due in list(self._drift_due.items()):
            if due > now:
                continue
            self._drift_due[name] = now + self._drift_interval_ms
            session = self._registry.by_name(name)
            if session is None:
                self._drift_due.pop(name, None)
                continue
            try:
                found = await self._drift_of(session)
            except IpcError as exc:
                logger.warning("drift check of plugin %s failed: %s", name, exc.code)
                continue
            if found:
                self._drift_found = True
                self._kick(Trigger.DRIFT)

    async def _drift_of(self, session: PluginSession) -> bool:
        """Compare the plugin's inventory and health with the ledger (§5.8)."""
        listing = await session.request(
            "integration.list", {}, self._timeouts.get("integration.list")
        )
        inventory = {
            row["id"]: row
            for row in listing.get("integrations", [])
            if isinstance(row, dict) and isinstance(row.get("id"), str)
        }
        found = False
        for item in [i for i in self._items.values() if i.owner == session.name and i.installed]:
            held = inventory.pop(item.id, None)
            found |= self._compare(item, held)
        for item_id, held in inventory.items():
            found = True
            known = self._items.get(item_id)
            if known is not None and known.owner not in (None, session.name):
                logger.info(
                    "plugin %s holds a stray copy of %s; removing it", session.name, item_id
                )
                await session.request(
                    "integration.remove",
                    {"integrationId": item_id, "version": str(held.get("version", ""))},
                )
                continue
            if known is not None:
                # Ours, with an install we thought failed: record what the plugin holds.
                known.owner = session.name
                known.installed_version = str(held.get("version"))
                known.spec_hash = None
                known.active = held.get("status") == "active"
                continue
            # Unknown to the ledger: adopt it, so the pass removes it unless it is desired.
            self._items[item_id] = LedgerItem(
                id=item_id,
                status=ItemStatus.INSTALLED,
                installed_version=str(held.get("version")),
                owner=session.name,
                active=held.get("status") == "active",
                updated_at=self._now(),
            )
        found |= await self._health_of(session)
        for item in self._items.values():
            if item.owner == session.name:
                await self._save(item)
        return found

    def _compare(self, item: LedgerItem, held: dict[str, Any] | None) -> bool:
        if held is None:
            item.installed_version = item.spec_hash = item.config_hash = None
            item.active = False
            return True
        drift = False
        if held.get("version") != item.installed_version:
            item.installed_version = str(held.get("version"))
            item.spec_hash = None  # forces an upgrade to the desired spec
            drift = True
        if held.get("configHash") != item.config_hash:
            item.config_hash = held.get("configHash")
            drift = True
        active = held.get("status") == "active"
        if active != item.active:
            item.active = active
            drift = True
        if item.secret_fields and held.get("secretsLoaded") is False:
            self._sent_digests.pop(item.id, None)
            self._secrets_lost.add(item.id)
            drift = True
        if drift and item.status not in (ItemStatus.ERROR, ItemStatus.PENDING):
            item.status = item.settled_status()
        return drift

    async def _health_of(self, session: PluginSession) -> bool:
        active = [i.id for i in self._items.values() if i.owner == session.name and i.active]
        if not active:
            return False
        result = await session.request(
            "integration.health",
            {"integrationIds": active},
            self._timeouts.get("integration.health"),
        )
        found = False
        for row in result.get("integrations", []):
            item = self._items.get(str(row.get("id"))) if isinstance(row, dict) else None
            if item is None or row.get("healthy") is not False:
                continue
            detail = self._redact(str(row.get("detail") or "the plugin reports it unhealthy"))
            item.active = False  # retried through activate (§5.8)
            item.status = ItemStatus.ERROR
            item.error = ReconcileError(UNHEALTHY, detail, True)
            item.next_attempt_at = self._now()
            found = True
        return found

    # -- reports -----------------------------------------------------------------------

    def _report(
        self,
        desired: DesiredState,
        trigger: str,
        started: int,
        finished: int,
        drift: bool,
        superseded: bool,
    ) -> dict[str, Any]:
        entries = [
            self._entry_json(item, desired.entries.get(item.id)) for item in self._items.values()
        ]
        live = {session.name: session for session in self._registry.sessions()}
        names = set(live) | {i.owner for i in self._items.values() if i.owner is not None}
        plugins = [
            {
                "name": name,
                "version": live[name].version if name in live else self._plugin_versions.get(name),
                "connected": name in live,
            }
            for name in sorted(names)
        ]
        return {
            "revision": desired.revision,
            "trigger": trigger,
            "startedAt": format_time_ms(started),
            "finishedAt": format_time_ms(finished),
            "drift": drift,
            "converged": self._converged(desired),
            "superseded": superseded,
            "integrations": entries,
            "plugins": plugins,
        }

    def _entry_json(self, item: LedgerItem, entry: DesiredEntry | None) -> dict[str, Any]:
        row = item.report_entry(entry.version if entry is not None else None)
        row["updatedAt"] = format_time_ms(item.updated_at)
        if item.next_attempt_at is not None:
            row["nextAttemptAt"] = format_time_ms(item.next_attempt_at)
        return row

    def _converged(self, desired: DesiredState | None = None) -> bool:
        desired = desired or self._desired
        for item in self._items.values():
            if item.id in desired.entries:
                if not item.in_target_status():
                    return False
            elif item.status != ItemStatus.REMOVED:
                return False
        return all(item_id in self._items for item_id in desired.entries)

    # -- helpers -----------------------------------------------------------------------

    def _live_plugins(self) -> list[PluginInfo]:
        return [
            PluginInfo(session.name, frozenset(session.capabilities), order)
            for order, session in enumerate(self._registry.sessions())
        ]

    def _changed_entries(self, old: DesiredState, new: DesiredState) -> list[str]:
        """Return ids whose entry or secrets differ between two desired states."""
        changed = []
        for item_id in set(old.entries) | set(new.entries):
            before, after = old.entries.get(item_id), new.entries.get(item_id)
            same_secrets = dict(old.secrets.get(item_id, {})) == dict(new.secrets.get(item_id, {}))
            same_entry = (
                before is not None
                and after is not None
                and before.content_hash == after.content_hash
            )
            if not (same_entry and same_secrets):
                changed.append(item_id)
        return sorted(changed)

    def _announce_changes(self, revision: int, changed: Iterable[str]) -> None:
        by_owner: dict[str, list[str]] = {}
        for item_id in changed:
            item = self._items.get(item_id)
            if item is not None and item.owner is not None:
                by_owner.setdefault(item.owner, []).append(item_id)
        for session in self._registry.sessions():
            ids = by_owner.get(session.name)
            if ids:
                session.send_event(
                    "desired_state.changed", {"revision": revision, "integrationIds": ids}
                )

    def _redact(self, text: str) -> str:
        return str(redact(text, self.secret_values()))
