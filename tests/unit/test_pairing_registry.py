"""The pairing registry's request, approval and token rules (spec §5.6, §6)."""

from __future__ import annotations

from clawgate.protocol.pairing import Applicant, PairingRegistry


def applicant(scopes: tuple[str, ...], role: str = "operator") -> Applicant:
    return Applicant(
        device_id="d" * 64,
        public_key="key",
        role=role,
        scopes=scopes,
        platform="linux",
        device_family=None,
    )


def test_same_ask_refreshes_the_request() -> None:
    registry = PairingRegistry()
    first, new, _ = registry.request(applicant(("operator.read",)), "not-paired", 0)
    again, new_again, _ = registry.request(applicant(("operator.read",)), "not-paired", 10)
    assert new and not new_again and again.request_id == first.request_id and again.ts == 10


def test_a_changed_ask_supersedes_with_the_union_and_then_refreshes() -> None:
    registry = PairingRegistry()
    first, _, _ = registry.request(applicant(("operator.read",)), "not-paired", 0)
    wider, new, dropped = registry.request(applicant(("operator.write",)), "not-paired", 1)
    assert new and dropped == [first.request_id]
    assert wider.scopes == ("operator.read", "operator.write")
    repeat, new_repeat, _ = registry.request(applicant(("operator.write",)), "not-paired", 2)
    assert not new_repeat and repeat.request_id == wider.request_id


def test_requests_expire_after_five_minutes() -> None:
    registry = PairingRegistry()
    request, _, _ = registry.request(applicant(("operator.read",)), "not-paired", 0)
    assert registry.expire(299_999) == []
    assert registry.expire(300_000) == [request.request_id]


def test_approval_grants_exactly_the_requested_scopes_and_tokens_stay_within_them() -> None:
    registry = PairingRegistry(tokens=iter(["t1", "t2"]).__next__)
    request, _, _ = registry.request(applicant(("operator.read",)), "not-paired", 0)
    record = registry.approve(request.request_id, 1)
    assert record.approved_scopes == ("operator.read",)
    value, token = registry.issue(record.device_id, "operator", ("operator.admin",), 2, None)
    assert value == "t1" and token.scopes == ()
    assert registry.pairing_reason(applicant(("operator.admin",))) == "scope-upgrade"


def test_a_token_matches_only_its_device_and_role() -> None:
    registry = PairingRegistry(tokens=lambda: "secret-token")
    request, _, _ = registry.request(applicant(("operator.read",)), "not-paired", 0)
    record = registry.approve(request.request_id, 1)
    registry.issue(record.device_id, "operator", ("operator.read",), 2, None)
    assert registry.token_matches(record.device_id, "operator", "secret-token")
    assert not registry.token_matches(record.device_id, "node", "secret-token")
    assert not registry.token_matches("e" * 64, "operator", "secret-token")
    registry.revoke(record.device_id, "operator", 3)
    assert not registry.token_matches(record.device_id, "operator", "secret-token")
