"""The idempotency cache shared by side-effecting methods (spec §9).

Entries are created when a request is accepted and completed with its outcome.
Completed entries live `ttl_ms` after completion, at most `max_entries` of them,
oldest evicted first; in-flight entries are never evicted. Refused requests and
`retryable` errors are not cached (call `discard`), so a retry can succeed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import RequestError
from .limits import Limits

__all__ = ["DedupeCache", "DedupeEntry", "EntryState"]


class EntryState(Enum):
    """Whether the original request is still running."""

    IN_FLIGHT = "in-flight"
    DONE = "done"


@dataclass(slots=True)
class DedupeEntry:
    """One idempotency key's outcome."""

    key: str
    state: EntryState = EntryState.IN_FLIGHT
    completed_ms: int = 0
    ok: bool = False
    payload: Any = None
    error: RequestError | None = None
    # Opaque per-entry data for the method that owns the namespace (e.g. a run id).
    context: dict[str, Any] = field(default_factory=dict)


class DedupeCache:
    """Remember recent idempotency keys and what their requests returned."""

    def __init__(self, limits: Limits) -> None:
        self._ttl_ms = limits.dedupe_ttl_ms
        self._max = limits.dedupe_max_entries
        self._in_flight: dict[str, DedupeEntry] = {}
        self._done: OrderedDict[str, DedupeEntry] = OrderedDict()

    @staticmethod
    def cache_key(namespace: str, key: str) -> str:
        """Return the gateway-wide key `<namespace>:<key>`."""
        return f"{namespace}:{key}"

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._done)

    def lookup(self, namespace: str, key: str, now_ms: int) -> DedupeEntry | None:
        """Return the live entry for a key, or None."""
        self._expire(now_ms)
        full = self.cache_key(namespace, key)
        return self._in_flight.get(full) or self._done.get(full)

    def begin(self, namespace: str, key: str, now_ms: int) -> DedupeEntry:
        """Record an accepted request as in flight and return its entry.

        Raises:
            KeyError: the key already has a live entry; call `lookup` first.
        """
        if self.lookup(namespace, key, now_ms) is not None:
            raise KeyError(key)
        entry = DedupeEntry(self.cache_key(namespace, key))
        self._in_flight[entry.key] = entry
        return entry

    def complete(
        self,
        entry: DedupeEntry,
        now_ms: int,
        *,
        payload: Any = None,
        error: RequestError | None = None,
    ) -> None:
        """Store the outcome; a retryable error is forgotten instead."""
        self._in_flight.pop(entry.key, None)
        if error is not None and error.retryable:
            return
        entry.state = EntryState.DONE
        entry.completed_ms = now_ms
        entry.ok = error is None
        entry.payload = payload
        entry.error = error
        self._done[entry.key] = entry
        self._done.move_to_end(entry.key)
        while len(self._done) > self._max:
            self._done.popitem(last=False)

    def discard(self, entry: DedupeEntry) -> None:
        """Forget an entry whose request was refused before it took effect."""
        self._in_flight.pop(entry.key, None)
        self._done.pop(entry.key, None)

    def _expire(self, now_ms: int) -> None:
        cutoff = now_ms - self._ttl_ms
        while self._done:
            key, entry = next(iter(self._done.items()))
            if entry.completed_ms > cutoff:
                break
            del self._done[key]
