"""The reconciler's pure decisions: desired-state parsing, ordering, owners, steps, delays."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.cloud.desired import DesiredEntry, parse_desired_state
from clawgate.cloud.errors import DesiredStateError
from clawgate.cloud.ledger import ItemStatus, LedgerItem
from clawgate.cloud.plan import (
    PluginInfo,
    Step,
    order_desired,
    order_removals,
    pick_owner,
    retry_delay_ms,
    steps_for,
)

SECRET = "tok-9f8e7d6c5b4a"


def raw_entry(item_id: str, *, depends_on: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    manifest = {
        "id": item_id,
        "version": "1.0.0",
        "name": item_id,
        "capabilities": fields.pop("capabilities", ["integrations"]),
        "depends_on": list(depends_on),
        "config_schema": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "org": {"type": "string", "minLength": 2},
                "token": {"type": "string", "x-secret": True, "minLength": 30},
            },
        },
    }
    return {"id": item_id, "version": "1.0.0", "manifest": manifest, "config": {}, **fields}


def entries(*raws: dict[str, Any]) -> dict[str, DesiredEntry]:
    return dict(parse_desired_state({"revision": 1, "integrations": list(raws)}).entries)


def test_secrets_are_kept_apart_and_never_in_the_snapshot() -> None:
    state = parse_desired_state(
        {
            "revision": 3,
            "integrations": [
                raw_entry("gh", config={"org": "acme"}, secrets={"token": SECRET * 3})
            ],
        }
    )
    assert state.entries["gh"].invalid is None
    assert state.secrets == {"gh": {"token": SECRET * 3}}
    assert SECRET not in str(state.snapshot())


def test_a_secret_in_config_is_refused_and_not_kept() -> None:
    entry = entries(raw_entry("gh", config={"token": SECRET}))["gh"]
    assert entry.invalid is not None and entry.invalid.code == "INVALID_CONFIG"
    assert entry.invalid.details == {
        "errors": [
            {"path": "config.token", "message": "is a secret field: send it in secrets, not config"}
        ]
    }
    assert SECRET not in str(entry.snapshot())


def test_schema_errors_name_the_field_and_hide_secret_values() -> None:
    entry = entries(raw_entry("gh", config={"org": "x"}, secrets={"token": SECRET}))["gh"]
    assert entry.invalid is not None
    errors = entry.invalid.details["errors"]  # type: ignore[index]
    assert [e["path"] for e in errors] == ["config.org", "config.token"]
    assert "'x'" in errors[0]["message"]
    assert SECRET not in errors[1]["message"] and "secret value not shown" in errors[1]["message"]


def test_missing_secret_values_are_not_a_config_error() -> None:
    entry = entries(raw_entry("gh"))["gh"]
    assert entry.invalid is None and entry.required_secrets == ("token",)


def test_an_invalid_entry_stays_invalid_after_a_round_trip_through_disk() -> None:
    state = parse_desired_state(
        {"revision": 1, "integrations": [raw_entry("gh", config={"token": SECRET})]}
    )
    again = parse_desired_state(state.snapshot(), with_secrets=False)
    assert again.entries["gh"].invalid == state.entries["gh"].invalid


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "must be a JSON object"),
        ({"integrations": []}, "integer revision"),
        ({"revision": 1, "integrations": [{"id": "a"}, {"id": "a"}]}, "duplicate id"),
        ({"revision": 1, "integrations": [{"version": "1.0.0"}]}, "needs a string id"),
    ],
)
def test_unusable_snapshots_are_refused_whole(payload: Any, message: str) -> None:
    with pytest.raises(DesiredStateError, match=message):
        parse_desired_state(payload)


def test_manifest_errors_are_reported_with_their_paths() -> None:
    raw = raw_entry("gh")
    raw["manifest"]["version"] = "one"
    entry = entries(raw)["gh"]
    assert entry.invalid is not None and entry.invalid.code == "INVALID_MANIFEST"
    assert "manifest.version" in [e["path"] for e in entry.invalid.details["errors"]]  # type: ignore[index]


def test_dependencies_come_first_and_cycles_and_unknowns_are_flagged() -> None:
    ordering = order_desired(
        entries(
            raw_entry("crm", depends_on=("mail",)),
            raw_entry("mail", depends_on=("base",)),
            raw_entry("base"),
            raw_entry("x", depends_on=("y",)),
            raw_entry("y", depends_on=("x",)),
            raw_entry("z", depends_on=("x",)),
            raw_entry("orphan", depends_on=("ghost",)),
        )
    )
    order = ordering.apply
    assert order.index("base") < order.index("mail") < order.index("crm")
    assert {k: v.code for k, v in ordering.broken.items()} == {
        "x": "DEPENDENCY_CYCLE",
        "y": "DEPENDENCY_CYCLE",
        "orphan": "DEPENDENCY_MISSING",
    }
    assert "z" in order  # depends on a cycle: stays, never gets its dependency ready


def test_removals_take_dependants_down_first() -> None:
    items = [
        LedgerItem("base"),
        LedgerItem("crm", depends_on=("mail",)),
        LedgerItem("mail", depends_on=("base",)),
    ]
    assert order_removals(items) == ["crm", "mail", "base"]


def installed(**fields: Any) -> LedgerItem:
    entry = entries(raw_entry("gh"))["gh"]
    base = {
        "installed_version": "1.0.0",
        "spec_hash": entry.spec_hash,
        "config_hash": entry.config_hash,
        "active": True,
        "status": ItemStatus.ACTIVE,
        "owner": "old",
    }
    return LedgerItem("gh", **{**base, **fields})


@pytest.mark.parametrize(
    ("item", "enabled", "secrets_changed", "steps"),
    [
        (LedgerItem("gh"), True, False, [Step.INSTALL, Step.ACTIVATE]),
        (LedgerItem("gh"), False, False, [Step.INSTALL]),
        (installed(), True, False, []),
        (installed(spec_hash="old"), True, False, [Step.UPGRADE, Step.ACTIVATE]),
        (installed(spec_hash="old"), False, False, [Step.UPGRADE, Step.DEACTIVATE]),
        (installed(config_hash="old"), True, False, [Step.CONFIGURE]),
        (installed(), True, True, [Step.CONFIGURE]),
        (installed(active=False), True, False, [Step.ACTIVATE]),
        (installed(), False, False, [Step.DEACTIVATE]),
    ],
)
def test_steps_follow_the_diff_table(
    item: LedgerItem, enabled: bool, secrets_changed: bool, steps: list[Step]
) -> None:
    entry = entries(raw_entry("gh", enabled=enabled))["gh"]
    assert steps_for(entry, item, secrets_changed=secrets_changed) == steps


def plugins(*specs: tuple[str, tuple[str, ...]]) -> list[PluginInfo]:
    return [PluginInfo(name, frozenset(caps), order) for order, (name, caps) in enumerate(specs)]


def test_owner_is_sticky_waits_when_offline_and_moves_on_a_pin() -> None:
    entry = entries(raw_entry("gh"))["gh"]
    live = plugins(("old", ("integrations",)), ("new", ("integrations",)))
    assert pick_owner(entry, installed(), live).owner == "old"
    assert pick_owner(entry, installed(), plugins(("new", ("integrations",)))).owner is None
    assert pick_owner(entry, LedgerItem("gh"), live).owner == "new"  # most recent qualifying
    lost_caps = plugins(("old", ("other",)), ("new", ("integrations",)))
    assert pick_owner(entry, installed(), lost_caps).owner == "new"
    pinned = entries(raw_entry("gh", plugin="new"))["gh"]
    choice = pick_owner(pinned, installed(), live)
    assert (choice.owner, choice.remove_from) == ("new", "old")


def test_owner_needs_every_capability_of_the_manifest() -> None:
    entry = entries(raw_entry("gh", capabilities=["integrations", "mail"]))["gh"]
    assert pick_owner(entry, None, plugins(("a", ("integrations",)))).owner is None
    assert pick_owner(entry, None, plugins(("a", ("integrations", "mail")))).owner == "a"


def test_retry_delay_doubles_from_30_seconds_up_to_30_minutes() -> None:
    assert [retry_delay_ms(n, 1.0) for n in (1, 2, 3)] == [30_000, 60_000, 120_000]
    assert retry_delay_ms(20, 1.0) == 30 * 60_000
    assert retry_delay_ms(1, 0.8) == 24_000 and retry_delay_ms(1, 1.2) == 36_000


def test_root_level_schema_errors_never_quote_secret_values() -> None:
    raw = raw_entry("gh", secrets={"token": "ab\\cd'ef\"gh" + "x" * 30})
    raw["manifest"]["config_schema"]["maxProperties"] = 0
    entry = entries(raw)["gh"]
    assert entry.invalid is not None
    assert "ab\\" not in str(entry.invalid.details) and "cd'ef" not in str(entry.invalid.details)


def test_hashes_use_the_spec_notation() -> None:
    entry = entries(raw_entry("gh"))["gh"]
    assert entry.config_hash.startswith("sha256:") and len(entry.config_hash) == 7 + 64
