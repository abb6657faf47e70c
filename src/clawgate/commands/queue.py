"""The offline command queue's rules as a pure state machine (control-plane spec §4).

``CommandBook`` keeps every command record (terminal ones for the retention window, so a
re-sent COMMAND is answered from its record), one FIFO of queued ``commandId``s per target
key, and the secret values of live commands in memory. It does no I/O and reads no clock:
every method that needs the time takes ``now`` (integer milliseconds in hub time).

Invariants:

- A record's terminal state is final: no method moves a terminal record again.
- A ``commandId`` is in a target FIFO exactly when its record is ``queued``.
- Secret values are in ``_secrets`` only while the record is non-terminal; they never enter a
  ``Command``, and results/error messages are redacted before they are recorded (§8).
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .model import (
    EXPIRED,
    PLUGIN_DISCONNECTED,
    QUEUE_FULL,
    SECRETS_UNAVAILABLE,
    Command,
    CommandError,
    CommandState,
)

__all__ = [
    "DEFAULT_EXECUTION_TIMEOUT_MS",
    "DEFAULT_MAX_PER_TARGET",
    "DEFAULT_MAX_TOTAL",
    "DEFAULT_TTL_MS",
    "MAX_ATTEMPTS",
    "MAX_IN_FLIGHT_PER_PLUGIN",
    "REDACTED",
    "RETENTION_MS",
    "CommandBook",
    "Decision",
    "Outcome",
    "UnknownCommand",
    "execution_timeout_ms",
    "redact",
]

logger = logging.getLogger(__name__)

DEFAULT_TTL_MS: Final = 300_000
DEFAULT_MAX_TOTAL: Final = 1000
DEFAULT_MAX_PER_TARGET: Final = 100
#: Dispatches a command may have before a disconnect fails it (§2.10).
MAX_ATTEMPTS: Final = 3
#: ``command.execute`` calls one plugin may have in flight (§2.9). The router enforces it
#: from the dispatch decision to the reply, so its `accepted` commit counts as in flight too.
MAX_IN_FLIGHT_PER_PLUGIN: Final = 8
#: How long a terminal record outlives max(terminal time, expiresAt or Q) (§1.6, §4.1).
RETENTION_MS: Final = 24 * 3600 * 1000
#: Execution timeout when neither the command nor the manifest sets one (§4.2 step 5).
DEFAULT_EXECUTION_TIMEOUT_MS: Final = 30_000
REDACTED: Final = "[redacted]"
#: Shorter secret values are not redacted: they would mangle ordinary text (§8).
_MIN_REDACT_LEN: Final = 4


class UnknownCommand(KeyError):
    """No record exists for the ``commandId``."""


class Outcome(enum.Enum):
    """What ``submit`` did with a COMMAND."""

    DUPLICATE = "duplicate"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    EXPIRED = "expired"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of ``submit``: the record to persist (unless a duplicate) and then ack."""

    outcome: Outcome
    command: Command
    #: Commands ahead of it in its target queue (0 = head) when queued, else None.
    queue_position: int | None = None

    @property
    def changed(self) -> bool:
        """Return whether the record is new and must be committed before the ack."""
        return self.outcome is not Outcome.DUPLICATE

    @property
    def dispatch(self) -> bool:
        """Return whether the caller must now send ``command.execute``."""
        return self.outcome is Outcome.ACCEPTED


def execution_timeout_ms(command: Command, now: int, manifest_timeout_ms: int | None = None) -> int:
    """Return the ``command.execute`` timeout (§4.2 step 5), never below 0.

    ``timeoutMs``, else the manifest's ``timeout_ms`` (integration targets), else 30 s;
    capped by ``expiresAt - now`` when ``expiresAt`` is set.
    """
    timeout = command.timeout_ms
    if timeout is None:
        timeout = manifest_timeout_ms
    if timeout is None:
        timeout = DEFAULT_EXECUTION_TIMEOUT_MS
    if command.expires_at is not None:
        timeout = min(timeout, command.expires_at - now)
    return max(0, timeout)


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """Return ``value`` with every secret of 4+ characters in its strings replaced (§8)."""
    needles = sorted({s for s in secrets if len(s) >= _MIN_REDACT_LEN}, key=len, reverse=True)
    if not needles:
        return value
    return _redact(value, needles)


def _redact(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        for needle in needles:
            value = value.replace(needle, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {_redact(k, needles): _redact(v, needles) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, needles) for v in value]
    return value


class CommandBook:
    """Records, per-target FIFOs and in-memory secrets of hub commands (no I/O)."""

    def __init__(
        self,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        max_total: int = DEFAULT_MAX_TOTAL,
        max_per_target: int = DEFAULT_MAX_PER_TARGET,
        max_attempts: int = MAX_ATTEMPTS,
        retention_ms: int = RETENTION_MS,
    ) -> None:
        """Configure the queue TTL (``queue.ttl_s`` x 1000), caps and limits."""
        self.ttl_ms = ttl_ms
        self.max_total = max_total
        self.max_per_target = max_per_target
        self.max_attempts = max_attempts
        self.retention_ms = retention_ms
        self._records: dict[str, Command] = {}
        self._queues: dict[str, deque[str]] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._tail = 0

    # -- queries ---------------------------------------------------------------------------

    def get(self, command_id: str) -> Command | None:
        """Return the record for ``command_id``, if any."""
        return self._records.get(command_id)

    def secrets_for(self, command_id: str) -> dict[str, str]:
        """Return a copy of the secret values to pass in ``command.execute`` (empty if none)."""
        return dict(self._secrets.get(command_id, {}))

    def next_for(self, target_key: str) -> Command | None:
        """Return the head of ``target_key``'s queue without taking it."""
        queue = self._queues.get(target_key)
        return self._records[queue[0]] if queue else None

    def queue_position(self, command_id: str) -> int | None:
        """Return how many commands are ahead of a queued command, else None."""
        record = self._records.get(command_id)
        if record is None or record.state is not CommandState.QUEUED:
            return None
        return self._queues[record.target_key].index(command_id)

    def depth(self) -> int:
        """Return the number of queued commands."""
        return sum(len(q) for q in self._queues.values())

    def by_target(self) -> dict[str, int]:
        """Return the number of queued commands per target key."""
        return {key: len(q) for key, q in self._queues.items() if q}

    def queued(self) -> list[Command]:
        """Return the queued commands, grouped by target key, each group in FIFO order."""
        return [self._records[cid] for key in sorted(self._queues) for cid in self._queues[key]]

    def in_flight(self) -> list[Command]:
        """Return the ``accepted`` commands."""
        return [c for c in self._records.values() if c.state is CommandState.ACCEPTED]

    def unacked(self) -> list[Command]:
        """Return terminal commands whose ack has not reached a connected link yet."""
        return [c for c in self._records.values() if c.terminal and not c.ack_sent]

    def retained(self, now: int) -> list[Command]:
        """Return the terminal records still inside their retention window."""
        return [c for c in self._records.values() if c.terminal and not self._prunable(c, now)]

    # -- transitions -----------------------------------------------------------------------

    def submit(
        self,
        command: Command,
        secrets: Mapping[str, str],
        *,
        live_route: bool,
        has_capacity: bool,
        now: int,
    ) -> Decision:
        """Process a parsed COMMAND (§4.2 steps 1, 3, 4).

        Args:
            command: the record from ``parse_command``.
            secrets: its secret values; kept in memory only, and only if it is not terminal.
            live_route: a registered plugin can take the target now (§2.9).
            has_capacity: that plugin has fewer than 8 commands in flight.
            now: hub time in milliseconds.

        Returns:
            ``DUPLICATE`` with the existing record unchanged, else the new record: ``expired``,
            ``accepted`` (attempt 1; dispatch it), ``queued`` or ``rejected`` (``QUEUE_FULL``).
        """
        existing = self._records.get(command.command_id)
        if existing is not None:
            return Decision(Outcome.DUPLICATE, existing, self.queue_position(existing.command_id))
        if set(secrets) != set(command.secret_names):
            raise ValueError("secret names do not match the secret values")
        deadline = command.issued_at + self.ttl_ms
        if command.expires_at is not None:
            deadline = min(deadline, command.expires_at)
        received = {"deadline": deadline, "received_at": now, "updated_at": now}
        if now >= deadline:
            command = command.evolve(**received)
            record = self._finish(command, CommandState.EXPIRED, now, error=_expired(command))
            return Decision(Outcome.EXPIRED, record)
        queue = self._queues.get(command.target_key)
        if live_route and has_capacity and not queue:
            record = command.evolve(
                **received, state=CommandState.ACCEPTED, attempt=1, position=self._next_tail()
            )
            self._records[record.command_id] = record
            self._secrets[record.command_id] = dict(secrets)
            return Decision(Outcome.ACCEPTED, record)
        if self.depth() >= self.max_total or len(queue or ()) >= self.max_per_target:
            error = CommandError(QUEUE_FULL, "command queue is full", retryable=True)
            record = self._finish(command.evolve(**received), CommandState.REJECTED, now, error)
            return Decision(Outcome.REJECTED, record)
        record = command.evolve(
            **received, state=CommandState.QUEUED, attempt=0, position=self._next_tail()
        )
        self._records[record.command_id] = record
        self._secrets[record.command_id] = dict(secrets)
        queue = self._queues.setdefault(record.target_key, deque())
        queue.append(record.command_id)
        return Decision(Outcome.QUEUED, record, len(queue) - 1)

    def reject(self, command: Command, error: CommandError, now: int) -> Decision:
        """Record ``command`` as ``rejected`` with ``error`` (validation or routing, §4.2 step 2).

        A ``commandId`` that already has a record is a duplicate and is left unchanged.
        """
        existing = self._records.get(command.command_id)
        if existing is not None:
            return Decision(Outcome.DUPLICATE, existing, self.queue_position(existing.command_id))
        command = command.evolve(received_at=now, updated_at=now)
        return Decision(Outcome.REJECTED, self._finish(command, CommandState.REJECTED, now, error))

    def start(self, command_id: str, now: int) -> Command:
        """Take the head of its target queue for dispatch: ``accepted``, attempt at least 1.

        Raises:
            UnknownCommand: no such record.
            ValueError: the command is not the head of its queue.
        """
        record = self._get(command_id)
        queue = self._queues.get(record.target_key)
        if record.state is not CommandState.QUEUED or not queue or queue[0] != command_id:
            raise ValueError(f"command {command_id} is not at the head of its queue")
        queue.popleft()
        # A re-queued command already carries its next attempt number (§2.10).
        record = record.evolve(
            state=CommandState.ACCEPTED, attempt=max(record.attempt, 1), updated_at=now
        )
        self._records[command_id] = record
        return record

    def complete(
        self,
        command_id: str,
        now: int,
        *,
        result: Any = None,
        error: CommandError | None = None,
        extra_secrets: Iterable[str] = (),
    ) -> Command | None:
        """End an ``accepted`` command: ``failed`` with ``error``, else ``succeeded`` with result.

        The result and error are redacted of the command's secrets and ``extra_secrets``
        (the daemon's other current secret values) before recording.

        Returns:
            The terminal record, or None when the command is not ``accepted`` (a late reply
            after a timeout, disconnect or restart is discarded; the first terminal state wins).

        Raises:
            UnknownCommand: no such record.
        """
        record = self._get(command_id)
        if record.state is not CommandState.ACCEPTED:
            logger.info("ignoring completion of command %s in state %s", command_id, record.state)
            return None
        secrets = [*self._secrets.get(command_id, {}).values(), *extra_secrets]
        if error is not None:
            error = CommandError(
                error.code,
                redact(error.message, secrets),
                error.retryable,
                redact(error.details, secrets),
            )
            return self._finish(record, CommandState.FAILED, now, error=error)
        return self._finish(record, CommandState.SUCCEEDED, now, result=redact(result, secrets))

    def expire_due(self, now: int) -> list[Command]:
        """Take every queued command whose deadline ``Q`` has been reached out as ``expired``."""
        expired: list[Command] = []
        for key, queue in self._queues.items():
            due = [cid for cid in queue if now >= self._records[cid].deadline]
            for cid in due:
                queue.remove(cid)
                record = self._records[cid]
                expired.append(self._finish(record, CommandState.EXPIRED, now, _expired(record)))
            if due:
                logger.info("expired %d queued commands for %s", len(due), key)
        return expired

    def plugin_disconnected(self, command_ids: Iterable[str], now: int) -> list[Command]:
        """Handle in-flight commands whose plugin went away (§2.10 step 2).

        Each ``accepted`` command goes back to the head of its target queue with ``attempt``
        + 1 while ``Q`` has not passed and fewer than ``max_attempts`` dispatches were made;
        otherwise it ends ``failed`` with ``PLUGIN_DISCONNECTED`` (retryable). Several
        re-queued commands of one target keep their original order. Other ids are ignored.

        Returns:
            The changed records (``queued`` or ``failed``), to persist and ack.
        """
        records = [self._get(cid) for cid in command_ids]
        interrupted = [r for r in records if r.state is CommandState.ACCEPTED]
        # Pushing onto the head in reverse arrival order leaves the oldest first.
        interrupted.sort(key=lambda r: r.position, reverse=True)
        changed = [self._interrupted(record, now) for record in interrupted]
        changed.reverse()
        return changed

    def mark_ack_sent(self, command_id: str, now: int) -> Command | None:
        """Set ``ackSent`` on a terminal record; return it if it changed."""
        record = self._get(command_id)
        if not record.terminal or record.ack_sent:
            return None
        record = record.evolve(ack_sent=True, updated_at=now)
        self._records[command_id] = record
        return record

    def prune(self, now: int) -> list[str]:
        """Forget terminal records past retention; return their ``commandId``s to delete."""
        gone = [cid for cid, r in self._records.items() if r.terminal and self._prunable(r, now)]
        for cid in gone:
            del self._records[cid]
        return gone

    def load(self, records: Iterable[Command], now: int) -> list[Command]:
        """Rebuild the book from persisted records after a restart (§4.5).

        Terminal records are kept for dedupe. Non-terminal ones, first matching rule wins:
        ``Q`` passed → ``expired``; secret names recorded → ``failed`` ``SECRETS_UNAVAILABLE``;
        ``queued`` → queued again in its original order with its original ``Q``; ``accepted``
        → treated as a plugin disconnect.

        Returns:
            The records that changed, to persist and ack after the next SERVICE_ACK.

        Raises:
            ValueError: the book is not empty.
        """
        if self._records:
            raise ValueError("load into an empty CommandBook only")
        changed: list[Command] = []
        interrupted: list[Command] = []
        ordered = sorted(records, key=lambda r: r.position)
        for record in ordered:
            self._records[record.command_id] = record
            self._tail = max(self._tail, record.position)
            if record.terminal:
                continue
            if now >= record.deadline:
                changed.append(
                    self._finish(record, CommandState.EXPIRED, now, error=_expired(record))
                )
            elif record.secret_names:
                error = CommandError(
                    SECRETS_UNAVAILABLE,
                    "secret values were lost in a daemon restart",
                    retryable=True,
                )
                changed.append(self._finish(record, CommandState.FAILED, now, error=error))
            elif record.state is CommandState.QUEUED:
                self._queues.setdefault(record.target_key, deque()).append(record.command_id)
            else:
                interrupted.append(record)
        changed.extend(self.plugin_disconnected([r.command_id for r in interrupted], now))
        return changed

    # -- internals -------------------------------------------------------------------------

    def _get(self, command_id: str) -> Command:
        record = self._records.get(command_id)
        if record is None:
            raise UnknownCommand(command_id)
        return record

    def _next_tail(self) -> int:
        self._tail += 1
        return self._tail

    def _interrupted(self, record: Command, now: int) -> Command:
        if now < record.deadline and record.attempt < self.max_attempts:
            queue = self._queues.setdefault(record.target_key, deque())
            position = self._records[queue[0]].position - 1 if queue else record.position
            requeued = record.evolve(
                state=CommandState.QUEUED,
                attempt=record.attempt + 1,
                position=position,
                updated_at=now,
            )
            self._records[record.command_id] = requeued
            queue.appendleft(record.command_id)
            return requeued
        error = CommandError(PLUGIN_DISCONNECTED, "the plugin disconnected", retryable=True)
        return self._finish(record, CommandState.FAILED, now, error=error)

    def _finish(
        self,
        record: Command,
        state: CommandState,
        now: int,
        error: CommandError | None = None,
        *,
        result: Any = None,
    ) -> Command:
        # Dropping the secrets here is what "dropped at the terminal state" (§4.4) means.
        self._secrets.pop(record.command_id, None)
        record = record.evolve(
            state=state, result=result, error=error, updated_at=now, terminal_at=now
        )
        self._records[record.command_id] = record
        return record

    def _prunable(self, record: Command, now: int) -> bool:
        assert record.terminal_at is not None
        end = record.expires_at if record.expires_at is not None else record.deadline
        return now >= max(record.terminal_at, end) + self.retention_ms


def _expired(record: Command) -> CommandError:
    binding = record.expires_at is not None and record.expires_at == record.deadline
    reason = "deadline" if binding else "target_offline"
    return CommandError(EXPIRED, "the command expired", retryable=False, details={"reason": reason})
