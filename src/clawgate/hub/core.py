"""The hub's operations, shared by the operator API and the daemon links (spec §7).

Every write commits to the store first and then publishes a wake-up on the bus; whoever holds
the daemon's link reloads the item and sends it. Secret values pass through the vault only.

Hints are never the source of truth (spec §7.2): every ``sweep_interval_s`` the instance
records its heartbeat and compares what each link it holds has sent with the database (its
session still owns the daemon, the desired revision, the unsettled commands), and a waiting
HTTP request re-reads its command every second. A lost hint costs latency, never an item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..protocol.control_link import (
    Clock,
    CommandTarget,
    InvalidMessage,
    MessageIssue,
)
from ..protocol.timefmt import format_time
from .bus import BusHandler, HubBus, Subscription, command_channel, daemon_channel
from .desired import validate_desired
from .keys import hash_key, new_key, new_key_id
from .metrics import HubMetrics
from .settings import HubSettings
from .store import (
    CommandRecord,
    DaemonRecord,
    DesiredRecord,
    HubStore,
    KeyRecord,
    NewCommand,
    SweepRow,
)
from .vault import SecretVault

__all__ = [
    "DEFAULT_EXPIRES_IN_MS",
    "MAX_WAIT_S",
    "CommandInput",
    "HubCore",
    "IssuedKey",
    "LiveLink",
    "command_scope",
    "desired_scope",
]

logger = logging.getLogger(__name__)

#: ``expiresAt = issuedAt + expiresInMs``, 5 minutes unless the operator says (spec §7.1).
DEFAULT_EXPIRES_IN_MS: Final = 300_000
MAX_EXPIRES_IN_MS: Final = 7 * 24 * 3600 * 1000
#: Longest ``?wait=`` an HTTP request may ask for (spec §7.1).
MAX_WAIT_S: Final = 60.0
#: A waiting request re-reads the database this often, in case a hint was lost (spec §7.2).
WAIT_POLL_S: Final = 1.0
#: Revocations, so that every instance closes the links of a revoked key.
KEYS_CHANNEL: Final = "clawgate.keys"
#: An instance whose heartbeat is older than this many sweep intervals holds no daemon.
DEAD_AFTER_SWEEPS: Final = 3


def desired_scope(daemon_id: str, revision: int) -> str:
    """Return the vault scope of one desired-state revision's secrets."""
    return f"desired:{daemon_id}:{revision}"


def command_scope(command_id: str) -> str:
    """Return the vault scope of one command's secrets."""
    return f"command:{command_id}"


class CommandInput(BaseModel):
    """The body of ``POST /v1/daemons/{daemonId}/commands``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", max_length=200)
    target: CommandTarget
    params: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] | None = Field(default=None, repr=False)
    timeoutMs: int | None = Field(default=None, gt=0, le=3_600_000)
    expiresInMs: int = Field(default=DEFAULT_EXPIRES_IN_MS, gt=0, le=MAX_EXPIRES_IN_MS)
    idempotencyKey: str | None = Field(default=None, min_length=1, max_length=256)


class LiveLink(Protocol):
    """What the core and the server ask of a daemon's live link (``link.DaemonLink``)."""

    @property
    def key_id(self) -> str:
        """The id of the API key the link authenticated with."""
        ...

    def repair(self, row: SweepRow) -> None:
        """Close if another session owns the daemon; send what the link has not sent yet."""
        ...

    def tick(self, now: float) -> None:
        """Send PING, or close a link silent for 2.5 heartbeats (``now``: monotonic)."""
        ...

    @property
    def session_id(self) -> str:
        """The link's session."""
        ...

    #: A PONG arrived since the last sweep.
    seen: bool

    def revoked(self) -> None:
        """Close because the link's key was revoked."""
        ...

    def restarting(self) -> None:
        """Close because the hub is stopping."""
        ...


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new daemon key: the only moment the key itself exists outside the daemon."""

    record: KeyRecord
    key: str


def parse_command_input(body: object) -> CommandInput:
    """Validate a command body.

    Raises:
        InvalidMessage: listing every problem (never echoing values).
    """
    try:
        return CommandInput.model_validate(body)
    except ValidationError as exc:
        issues = [
            MessageIssue(
                path=".".join(str(p) for p in err["loc"]),
                message="is required" if err["type"] == "missing" else err["msg"],
            )
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise InvalidMessage(issues) from None


class HubCore:
    """State shared by everything the hub serves: store, bus, vault, clock and live links."""

    def __init__(
        self,
        settings: HubSettings,
        store: HubStore,
        bus: HubBus,
        vault: SecretVault,
        *,
        clock: Clock = time.time,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        """Compose the hub's parts; nothing starts here."""
        self.settings = settings
        self.store = store
        self.bus = bus
        self.vault = vault
        self.clock = clock
        self.new_id = new_id
        self.links: set[LiveLink] = set()
        #: The registered links of this instance by daemonId (what the sweep checks).
        self.held: dict[str, LiveLink] = {}
        #: This process's identity in session ownership; new on every start.
        self.instance_id = new_id()
        self.metrics = HubMetrics(lambda: len(self.held))
        self._keys_subscription: Subscription | None = None
        #: Set whenever the last live link has ended (stop() waits on it).
        self.links_drained = asyncio.Event()
        self.stopping = False

    def add_link(self, link: LiveLink) -> None:
        """Track a live link."""
        self.links.add(link)
        self.links_drained.clear()

    def remove_link(self, link: LiveLink) -> None:
        """Forget a link that ended."""
        self.links.discard(link)
        if not self.links:
            self.links_drained.set()

    def now(self) -> str:
        """Return hub time as an RFC 3339 string."""
        return format_time(self.clock())

    # Bus: every hint carries its send time, so each instance can report the bus's lag.

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Publish a hint on the bus."""
        await self.bus.publish(channel, {**message, "sentAt": self.clock()})

    async def subscribe(self, channel: str, handler: BusHandler) -> Subscription:
        """Subscribe ``handler`` to ``channel``, observing each hint's lag."""

        def observed(message: dict[str, Any]) -> None:
            sent = message.get("sentAt")
            if isinstance(sent, int | float):
                self.metrics.bus_lag.observe(max(0.0, self.clock() - sent))
            handler(message)

        return await self.bus.subscribe(channel, observed)

    # Daemons: connected means held by a session of a live instance, whichever it is.

    def alive_after(self) -> float:
        """Return the heartbeat time before which an instance counts as gone."""
        return self.clock() - DEAD_AFTER_SWEEPS * self.settings.sweep_interval_s

    async def list_daemons(self) -> list[DaemonRecord]:
        """Return every known daemon, as the whole cluster sees it."""
        return await self.store.list_daemons(self.alive_after())

    async def get_daemon(self, daemon_id: str) -> DaemonRecord | None:
        """Return one daemon, as the whole cluster sees it."""
        return await self.store.get_daemon(daemon_id, self.alive_after())

    # The sweep

    async def beat(self) -> None:
        """Record that this instance is alive."""
        await self.store.beat(self.instance_id, self.clock())

    async def sweep_once(self) -> None:
        """Beat, then let every held link repair what a lost hint left undone."""
        await self.beat()
        key_ids = sorted({link.key_id for link in self.links})
        if key_ids:
            self.close_revoked(await self.store.revoked_keys(key_ids))
        held = dict(self.held)
        if not held:
            return
        seen = [(daemon_id, link) for daemon_id, link in held.items() if link.seen]
        if seen:
            for _daemon_id, pinged in seen:
                pinged.seen = False
            await self.store.touch([(d, pinged.session_id) for d, pinged in seen], self.now())
        for row in await self.store.sweep(sorted(held), self.now()):
            link = held.get(row.daemon_id)
            if link is not None and self.held.get(row.daemon_id) is link:
                link.repair(row)

    async def run_ticks(self) -> None:
        """Tick every link each heartbeat interval until cancelled."""
        interval_s = self.settings.heartbeat_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            for link in list(self.links):
                link.tick(now)

    async def run_sweeps(self) -> None:
        """Sweep every ``sweep_interval_s`` until cancelled; a failed sweep is retried."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep_once()
            except Exception as exc:
                self.metrics.sweeps_failed.inc()
                logger.warning(
                    "sweep failed (retried in %g s): %s", self.settings.sweep_interval_s, exc
                )

    # Keys

    async def issue_key(self, label: str) -> IssuedKey:
        """Create a daemon key; the caller shows it once."""
        key = new_key()
        record = await self.store.add_key(new_key_id(), hash_key(key), label, self.now())
        return IssuedKey(record, key)

    async def revoke_key(self, key_id: str) -> KeyRecord | None:
        """Revoke a key and close every link of the cluster that authenticated with it (4401).

        This instance closes its own links now, the others on the hint or their next sweep.
        """
        record = await self.store.revoke_key(key_id, self.now())
        if record is not None:
            self.close_revoked({key_id})
            await self.publish(KEYS_CHANNEL, {"kind": "revoked", "id": key_id})
        return record

    def close_revoked(self, key_ids: set[str]) -> None:
        """Close this instance's links that authenticated with one of ``key_ids``."""
        for link in list(self.links):
            if link.key_id in key_ids:
                link.revoked()

    def _on_keys_hint(self, message: dict[str, Any]) -> None:
        if message.get("kind") == "revoked" and isinstance(message.get("id"), str):
            self.close_revoked({message["id"]})

    async def start(self) -> None:
        """Listen for revocations made on other instances; record this instance's beat."""
        self._keys_subscription = await self.subscribe(KEYS_CHANNEL, self._on_keys_hint)
        await self.beat()

    # Desired state

    async def put_desired(self, daemon_id: str, body: object) -> DesiredRecord:
        """Validate and store the next revision, then wake the daemon's link.

        Raises:
            DesiredInvalid: the body breaks a rule.
            RevisionConflict: ``ifRevision`` is stale.
        """
        checked = validate_desired(body)
        sealed_scope: list[str] = []

        def seal(revision: int) -> bytes | None:
            scope = desired_scope(daemon_id, revision)
            sealed_scope.append(scope)
            return self.vault.seal(scope, dict(checked.secrets))

        record = await self.store.put_desired(
            daemon_id, checked.integrations, seal, checked.if_revision, self.now()
        )
        self.vault.drop(desired_scope(daemon_id, record.revision - 1))
        await self.publish(
            daemon_channel(daemon_id),
            {"kind": "desired_state", "daemonId": daemon_id, "id": record.revision},
        )
        return record

    def desired_view(self, record: DesiredRecord | None) -> dict[str, Any]:
        """Return a desired state for operators: secret names, never values."""
        if record is None:
            return {"revision": 0, "issuedAt": None, "integrations": [], "secretsAvailable": True}
        scope = desired_scope(record.daemon_id, record.revision)
        has_secrets = any(entry["secretNames"] for entry in record.integrations)
        available = not has_secrets or self.vault.open(scope, record.sealed) is not None
        integrations = []
        for entry in record.integrations:
            view = {k: v for k, v in entry.items() if k != "secretNames"}
            view["secrets"] = entry["secretNames"]
            integrations.append(view)
        return {
            "revision": record.revision,
            "issuedAt": record.issued_at,
            "integrations": integrations,
            "secretsAvailable": available,
        }

    async def desired_message(self, daemon_id: str) -> dict[str, Any]:
        """Return the DESIRED_STATE payload for a daemon, secrets included when held."""
        record = await self.store.get_desired(daemon_id)
        if record is None:
            return {"revision": 0, "issuedAt": self.now(), "integrations": []}
        values = self.vault.open(desired_scope(daemon_id, record.revision), record.sealed) or {}
        integrations = []
        for entry in record.integrations:
            out = {k: v for k, v in entry.items() if k != "secretNames"}
            held = values.get(entry["id"])
            if held:
                out["secrets"] = held
            integrations.append(out)
        return {
            "revision": record.revision,
            "issuedAt": record.issued_at,
            "integrations": integrations,
        }

    # Commands

    async def post_command(
        self, daemon_id: str, body: CommandInput, *, wait_s: float = 0.0
    ) -> tuple[CommandRecord, bool]:
        """Store a command (or find it by idempotency key), then wake the daemon's link.

        With ``wait_s`` > 0, return it once terminal or when ``wait_s`` runs out. The wait
        listens for its acks before the command is stored, so it starts from the record just
        stored instead of reading it back, and no ack announced meanwhile is missed.
        """
        command_id = self.new_id()
        woken = asyncio.Event()
        subscription = (
            await self.subscribe(command_channel(command_id), lambda _m: woken.set())
            if wait_s > 0
            else None
        )
        try:
            record, created = await self._add_command(command_id, daemon_id, body)
            if wait_s <= 0 or record.terminal:
                return record, created
            if not created:
                return await self.wait_command(record.command_id, wait_s) or record, False
            deadline = time.monotonic() + wait_s
            return await self._wait_terminal(command_id, woken, deadline, record) or record, True
        finally:
            if subscription is not None:
                subscription.close()

    async def _add_command(
        self, command_id: str, daemon_id: str, body: CommandInput
    ) -> tuple[CommandRecord, bool]:
        issued = self.clock()
        secrets = dict(body.secrets or {})
        command = NewCommand(
            command_id=command_id,
            daemon_id=daemon_id,
            name=body.name,
            target=body.target.model_dump(exclude_none=True),
            params=body.params,
            secret_names=sorted(secrets),
            idempotency_key=body.idempotencyKey,
            issued_at=format_time(issued),
            expires_at=format_time(issued + body.expiresInMs / 1000),
            timeout_ms=body.timeoutMs,
            sealed=self.vault.seal(command_scope(command_id), secrets),
        )
        record, created = await self.store.add_command(command)
        if not created:
            self.vault.drop(command_scope(command_id))
            return record, False
        await self.publish(
            daemon_channel(daemon_id), {"kind": "command", "daemonId": daemon_id, "id": command_id}
        )
        return record, True

    def command_message(self, record: CommandRecord) -> dict[str, Any]:
        """Return the COMMAND payload for a stored command, secrets included when held."""
        cmd = record.command
        payload: dict[str, Any] = {
            "commandId": cmd.command_id,
            "name": cmd.name,
            "target": cmd.target,
            "params": cmd.params,
            "issuedAt": cmd.issued_at,
            "expiresAt": cmd.expires_at,
        }
        if cmd.idempotency_key is not None:
            payload["idempotencyKey"] = cmd.idempotency_key
        if cmd.timeout_ms is not None:
            payload["timeoutMs"] = cmd.timeout_ms
        if cmd.secret_names:
            values = self.vault.open(command_scope(cmd.command_id), cmd.sealed)
            if values is not None:
                payload["secrets"] = values
        return payload

    async def wait_command(self, command_id: str, wait_s: float) -> CommandRecord | None:
        """Return the command once terminal, or its current record when ``wait_s`` runs out."""
        woken = asyncio.Event()
        subscription = await self.subscribe(command_channel(command_id), lambda _m: woken.set())
        try:
            return await self._wait_terminal(command_id, woken, time.monotonic() + wait_s)
        finally:
            subscription.close()

    async def _wait_terminal(
        self,
        command_id: str,
        woken: asyncio.Event,
        deadline: float,
        known: CommandRecord | None = None,
    ) -> CommandRecord | None:
        """Read the command on each ack hint and every second until it is terminal.

        ``woken`` is set by the command's ack hints, subscribed before ``known`` (a record
        stored or read after that) if given; without it the first step reads.
        """
        while True:
            if known is None:
                # Cleared before the read, never after: an ack announced while the read is
                # queued behind its commit must still wake this wait, not the 1 s poll.
                woken.clear()
                record = await self.store.get_command(command_id)
            else:
                record, known = known, None
            left = deadline - time.monotonic()
            if record is None or record.terminal or left <= 0 or self.stopping:
                return record
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, WAIT_POLL_S)):
                    await woken.wait()
