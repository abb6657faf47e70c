"""The idempotency cache's bounds and semantics (spec §9)."""

import pytest

from clawgate.protocol.dedupe import DedupeCache, EntryState
from clawgate.protocol.errors import InvalidRequest, Unavailable
from clawgate.protocol.limits import Limits


def make_cache(**limits: int) -> DedupeCache:
    return DedupeCache(Limits(**limits))


def test_completed_entry_returns_the_first_outcome() -> None:
    cache = make_cache()
    entry = cache.begin("system-event", "k", 0)
    cache.complete(entry, 10, payload={"ok": True})
    found = cache.lookup("system-event", "k", 20)
    assert found is not None and found.state is EntryState.DONE and found.payload == {"ok": True}


def test_namespaces_do_not_collide() -> None:
    cache = make_cache()
    cache.complete(cache.begin("a", "k", 0), 0, payload=1)
    assert cache.lookup("b", "k", 0) is None


def test_entry_expires_ttl_after_completion() -> None:
    cache = make_cache(dedupe_ttl_ms=1000)
    cache.complete(cache.begin("m", "k", 0), 500, payload=1)
    assert cache.lookup("m", "k", 1499) is not None
    assert cache.lookup("m", "k", 1500) is None


def test_oldest_completed_entries_are_evicted_first() -> None:
    cache = make_cache(dedupe_max_entries=2)
    for index, key in enumerate("abc"):
        cache.complete(cache.begin("m", key, index), index, payload=key)
    assert cache.lookup("m", "a", 3) is None
    assert cache.lookup("m", "c", 3) is not None


def test_in_flight_entries_are_never_evicted() -> None:
    cache = make_cache(dedupe_max_entries=1, dedupe_ttl_ms=1000)
    cache.begin("m", "running", 0)
    for index, key in enumerate("abc"):
        cache.complete(cache.begin("m", key, index), index, payload=key)
    entry = cache.lookup("m", "running", 10_000)
    assert entry is not None and entry.state is EntryState.IN_FLIGHT


def test_retryable_errors_are_not_cached() -> None:
    cache = make_cache()
    entry = cache.begin("m", "k", 0)
    cache.complete(entry, 0, error=Unavailable("busy", retryable=True))
    assert cache.lookup("m", "k", 0) is None


def test_final_errors_are_cached() -> None:
    cache = make_cache()
    cache.complete(cache.begin("m", "k", 0), 0, error=InvalidRequest("no"))
    entry = cache.lookup("m", "k", 0)
    assert entry is not None and not entry.ok and entry.error is not None


def test_begin_twice_is_a_bug() -> None:
    cache = make_cache()
    cache.begin("m", "k", 0)
    with pytest.raises(KeyError):
        cache.begin("m", "k", 0)
