"""The command queue's persistence shell: ``CommandBook`` decisions committed to state.db.

Every method changes the book, then commits the changed records through ``GroupCommit``
and returns only after the commit, so a caller that acks after ``await`` never acks an
uncommitted state (§1.6). The ``*_nowait`` forms make the same change and return it with a
future for its commit instead, for a caller that acts on the commit in a callback (the router
dispatches from there); they too may report the change only once that future is done. The
records are handed over before the method returns, so commits happen in the order the book
changed even when several tasks call in; changes made while a transaction is in flight share
the next one. If a commit fails the error reaches every caller whose records it held and
nothing may be acked; the book then runs ahead of the file, and the daemon should treat the
store failure as fatal (a restart reloads the file, §4.5).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..store import StateStore, commands_repo
from .group_commit import GroupCommit
from .model import Command, CommandError
from .queue import CommandBook, Decision

__all__ = ["CommandService", "CommitListener", "wall_clock_ms"]

logger = logging.getLogger(__name__)

#: Called with the records of each commit, in commit order, right after it succeeded.
CommitListener = Callable[[Sequence[Command]], None]


def wall_clock_ms() -> int:
    """Return the local time in epoch milliseconds."""
    return int(time.time() * 1000)


class CommandService:
    """Async facade over a ``CommandBook`` that persists every change before returning."""

    def __init__(
        self,
        store: StateStore,
        book: CommandBook,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        extra_secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """Use ``store`` for records and ``clock`` (hub time, ms) for every transition.

        ``extra_secrets`` returns other secret values to redact from results and errors
        (integration secrets, §8).
        """
        self._store = store
        self._book = book
        self._clock = clock
        self._listeners: list[CommitListener] = []
        self._extra_secrets = extra_secrets
        self._commits = GroupCommit(store, self._notify)

    @property
    def book(self) -> CommandBook:
        """The in-memory state (read-only use: changes must go through the service)."""
        return self._book

    async def load_on_start(self) -> list[Command]:
        """Load stored records into the empty book and apply §4.5; return records to ack."""
        stored = await self._store.read(commands_repo.load_commands)
        records = [Command.from_json(data) for data in stored]
        changed = self._book.load(records, self._clock())
        await self._save(changed)
        logger.info(
            "loaded %d command records; %d queued, %d changed by recovery",
            len(records),
            self._book.depth(),
            len(changed),
        )
        return changed

    async def submit(
        self,
        command: Command,
        secrets: dict[str, str],
        *,
        live_route: bool,
        has_capacity: bool,
    ) -> Decision:
        """Process a parsed COMMAND (``CommandBook.submit``) and commit a new record."""
        decision, committed = self.submit_nowait(
            command, secrets, live_route=live_route, has_capacity=has_capacity
        )
        await committed
        return decision

    def submit_nowait(
        self,
        command: Command,
        secrets: dict[str, str],
        *,
        live_route: bool,
        has_capacity: bool,
    ) -> tuple[Decision, asyncio.Future[None]]:
        """Decide on a parsed COMMAND now; return the decision and the future of its commit.

        A duplicate is answered from memory, so its future waits for everything saved so far:
        the state it reports reaches the disk first.
        """
        decision = self._book.submit(
            command, secrets, live_route=live_route, has_capacity=has_capacity, now=self._clock()
        )
        changed = [decision.command] if decision.changed else []
        return decision, self._commits.save_nowait(changed)

    async def reject(self, command: Command, error: CommandError) -> Decision:
        """Record a command rejected by validation or routing and commit it."""
        decision = self._book.reject(command, error, self._clock())
        if decision.changed:
            await self._save([decision.command])
        return decision

    async def start(self, command_id: str) -> Command:
        """Take the head of a target queue as ``accepted`` and commit it before dispatch."""
        record, committed = self.start_nowait(command_id)
        await committed
        return record

    def start_nowait(self, command_id: str) -> tuple[Command, asyncio.Future[None]]:
        """Take the head of a target queue as ``accepted``; dispatch only once it committed."""
        record = self._book.start(command_id, self._clock())
        return record, self._commits.save_nowait([record])

    async def complete(
        self, command_id: str, *, result: Any = None, error: CommandError | None = None
    ) -> Command | None:
        """Commit the terminal state of an ``accepted`` command; None if it was not accepted."""
        record, committed = self.complete_nowait(command_id, result=result, error=error)
        await committed
        return record

    def complete_nowait(
        self, command_id: str, *, result: Any = None, error: CommandError | None = None
    ) -> tuple[Command | None, asyncio.Future[None]]:
        """End an ``accepted`` command now; return its terminal record and its commit future.

        The record is None (and nothing is saved) when the command was not ``accepted``.
        """
        record = self._book.complete(
            command_id,
            self._clock(),
            result=result,
            error=error,
            extra_secrets=self._extra_secrets(),
        )
        return record, self._commits.save_nowait([] if record is None else [record])

    async def plugin_disconnected(self, command_ids: Iterable[str]) -> list[Command]:
        """Re-queue or fail a disconnected plugin's in-flight commands and commit them."""
        changed = self._book.plugin_disconnected(command_ids, self._clock())
        await self._save(changed)
        return changed

    async def expire_due(self) -> list[Command]:
        """Expire queued commands past their deadline and commit them; return them to ack."""
        expired = self._book.expire_due(self._clock())
        await self._save(expired)
        return expired

    async def mark_ack_sent(self, command_id: str) -> None:
        """Record that a terminal ack was written to a connected link."""
        record = self._book.mark_ack_sent(command_id, self._clock())
        if record is not None:
            await self._save([record])

    async def prune(self) -> list[str]:
        """Delete terminal records past retention; return their ``commandId``s."""
        gone = self._book.prune(self._clock())
        # Not through the group commit: a record past retention has no save still pending.
        if gone:
            await self._store.write(lambda conn: commands_repo.delete_commands(conn, gone))
        return gone

    def subscribe(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener`` after every commit of records; return a function that unsubscribes.

        This is how a sender of terminal acks (§4.2 step 6) learns that a state is on disk.
        The listener runs on the event loop right after the commit, before the committing
        call returns; it must not block, and an exception it raises is logged and swallowed
        (the commit stands).
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def next_for(self, target_key: str) -> Command | None:
        """Return the head of ``target_key``'s queue."""
        return self._book.next_for(target_key)

    def secrets_for(self, command_id: str) -> dict[str, str]:
        """Return the in-memory secret values for ``command.execute``."""
        return self._book.secrets_for(command_id)

    def depth(self) -> int:
        """Return the number of queued commands (``status.queue.depth``)."""
        return self._book.depth()

    def by_target(self) -> dict[str, int]:
        """Return queued commands per target key (``status.queue.byTarget``)."""
        return self._book.by_target()

    def list_queued(self) -> list[dict[str, Any]]:
        """Return the operator ``queue.list`` view: queued commands without secret values."""
        now = self._clock()
        return [
            {
                "commandId": c.command_id,
                "name": c.name,
                "targetKey": c.target_key,
                "queuePosition": self._book.queue_position(c.command_id),
                "attempt": c.attempt,
                "secretNames": list(c.secret_names),
                "issuedAt": c.issued_at,
                "expiresAt": c.expires_at,
                "deadline": c.deadline,
                "expiresInMs": max(0, c.deadline - now),
            }
            for c in self._book.queued()
        ]

    async def _save(self, records: Sequence[Command]) -> None:
        if not records:
            return
        await self._commits.save(records)

    def _notify(self, records: Sequence[Command]) -> None:
        for listener in list(self._listeners):
            try:
                listener(records)
            except Exception:
                logger.exception("a commit listener failed")
