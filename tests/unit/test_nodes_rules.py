"""The pure node rules: effective commands, command-surface approval, issued ids (§10.5)."""

from __future__ import annotations

from clawgate.protocol.nodes import (
    CommandPolicy,
    IssuedIds,
    SurfaceApplicant,
    SurfaceRegistry,
    approval_scopes,
)


def applicant(*commands: str, node_id: str = "n1") -> SurfaceApplicant:
    return SurfaceApplicant(node_id=node_id, commands=commands)


def test_default_policy_keeps_only_the_default_allowlist() -> None:
    policy = CommandPolicy()
    assert policy.effective(["system.run", "device.info", "camera.snap", "device.info"]) == (
        "device.info",
    )


def test_allow_commands_adds_and_deny_commands_wins() -> None:
    policy = CommandPolicy(allow=("system.*",), deny=("system.run", "canvas.*"))
    assert policy.effective(["system.run", "system.which", "canvas.eval", "device.info"]) == (
        "system.which",
        "device.info",
    )


def test_approver_needs_admin_for_system_commands() -> None:
    assert approval_scopes(["device.info"]) == ["operator.pairing", "operator.write"]
    assert approval_scopes(["system.run"]) == ["operator.pairing", "operator.admin"]
    assert approval_scopes([]) == ["operator.pairing"]


def test_auto_approved_surface_needs_no_request() -> None:
    registry = SurfaceRegistry()
    changes = registry.connect(applicant("device.info"), auto_approve=True, now_ms=1)
    assert changes.surface is not None and changes.surface.commands == ("device.info",)
    assert changes.request is None and registry.pending == {}


def test_unapproved_surface_waits_and_a_retry_refreshes_it() -> None:
    registry = SurfaceRegistry(request_ids=iter(["r1", "r2"]).__next__)
    first = registry.connect(applicant("device.info"), auto_approve=False, now_ms=1)
    again = registry.connect(applicant("device.info"), auto_approve=False, now_ms=2)
    assert first.request is not None and first.request_is_new
    assert again.request is not None and again.request.request_id == "r1"
    assert not again.request_is_new and again.request.ts == 2


def test_approved_subset_needs_nothing_and_a_superset_asks_again() -> None:
    registry = SurfaceRegistry(request_ids=iter(["r1", "r2"]).__next__)
    registry.connect(applicant("a", "b"), auto_approve=False, now_ms=1)
    registry.approve("r1", now_ms=2)
    assert registry.connect(applicant("a"), auto_approve=False, now_ms=3).empty
    wider = registry.connect(applicant("a", "c"), auto_approve=False, now_ms=4)
    assert wider.request is not None and wider.request.is_repair
    assert registry.approved("n1") == ("a", "b")


def test_changed_request_supersedes_the_waiting_one() -> None:
    registry = SurfaceRegistry(request_ids=iter(["r1", "r2"]).__next__)
    registry.connect(applicant("a"), auto_approve=False, now_ms=1)
    changes = registry.connect(applicant("a", "b"), auto_approve=False, now_ms=2)
    assert changes.dropped_requests == ["r1"] and list(registry.pending) == ["r2"]


def test_rejection_keeps_the_previous_surface() -> None:
    registry = SurfaceRegistry(request_ids=iter(["r1", "r2"]).__next__)
    registry.connect(applicant("a"), auto_approve=True, now_ms=1)
    registry.connect(applicant("a", "b"), auto_approve=False, now_ms=2)
    registry.reject("r2", now_ms=3)
    assert registry.approved("n1") == ("a",)


def test_requests_expire_after_the_pairing_ttl() -> None:
    registry = SurfaceRegistry(request_ids=iter(["r1"]).__next__)
    registry.connect(applicant("a"), auto_approve=False, now_ms=0)
    assert registry.expire(5 * 60 * 1000) == ["r1"]


def test_issued_ids_forget_the_oldest_beyond_capacity() -> None:
    issued = IssuedIds(capacity=2)
    for invoke_id in ("a", "b", "c"):
        issued.add(invoke_id)
    assert "a" not in issued and "b" in issued and "c" in issued
