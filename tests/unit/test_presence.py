"""The presence table and its version counter (spec §8.3, §8.8)."""

from clawgate.protocol.presence import PresenceTable

SELF = {"ts": 0, "mode": "gateway", "reason": "self"}


def test_self_entry_first_and_changes_bump_version() -> None:
    table = PresenceTable(SELF, expiry_ms=1000)
    table.upsert("a", {"ts": 1})
    assert table.entries() == [SELF, {"ts": 1}]
    assert table.version == 1
    assert table.remove("a") is True
    assert table.version == 2
    assert table.remove("a") is False
    assert table.version == 2


def test_detached_entries_expire() -> None:
    table = PresenceTable(SELF, expiry_ms=1000)
    table.upsert_detached("x", {"ts": 0, "text": "hi"}, now_ms=0)
    assert table.expire(999) is False
    assert table.expire(1000) is True
    assert table.entries() == [SELF]


def test_detached_update_merges_into_live_entry_without_expiry() -> None:
    table = PresenceTable(SELF, expiry_ms=1000)
    table.upsert("x", {"ts": 0, "mode": "ui"})
    table.upsert_detached("x", {"ts": 5, "text": "away"}, now_ms=5)
    assert table.entries()[1] == {"ts": 5, "mode": "ui", "text": "away"}
    assert table.expire(10_000) is False
