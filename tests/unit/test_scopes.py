"""Roles, scopes and authorization rules (spec §7)."""

import pytest

from clawgate.protocol.scopes import (
    ADMIN,
    PAIRING,
    READ,
    TALK,
    WRITE,
    MethodRole,
    Role,
    RoleRefused,
    ScopeRefused,
    authorize,
    effective_scopes,
    scope_satisfied,
)


@pytest.mark.parametrize(
    ("held", "required", "allowed"),
    [
        ([ADMIN], PAIRING, True),
        ([WRITE], READ, True),
        ([WRITE], TALK, True),
        ([WRITE], PAIRING, False),
        ([READ], WRITE, False),
        ([], READ, False),
        ([PAIRING], PAIRING, True),
    ],
)
def test_scope_implication(held: list[str], required: str, allowed: bool) -> None:
    assert scope_satisfied(held, required) is allowed


def test_effective_scopes_dedupe_keep_order_and_drop_unknown() -> None:
    requested = [WRITE, "bogus", READ, WRITE]
    assert effective_scopes(Role.OPERATOR, requested) == (WRITE, READ)


def test_node_keeps_only_node_prefixed_scopes() -> None:
    assert effective_scopes(Role.NODE, [ADMIN, "node.camera"]) == ("node.camera",)


def test_any_role_method_is_open_to_nodes() -> None:
    authorize(role=Role.NODE, scopes=(), method_role=MethodRole.ANY, method_scope=None)


def test_operator_method_refuses_node_role() -> None:
    with pytest.raises(RoleRefused, match="unauthorized role: node"):
        authorize(role=Role.NODE, scopes=(), method_role=MethodRole.OPERATOR, method_scope=READ)


def test_node_method_refuses_operator_role() -> None:
    with pytest.raises(RoleRefused, match="unauthorized role: operator"):
        authorize(
            role=Role.OPERATOR, scopes=(ADMIN,), method_role=MethodRole.NODE, method_scope=None
        )


def test_missing_scope_details() -> None:
    with pytest.raises(ScopeRefused) as caught:
        authorize(
            role=Role.OPERATOR, scopes=(READ,), method_role=MethodRole.OPERATOR, method_scope=WRITE
        )
    assert caught.value.message == f"missing scope: {WRITE}"
    assert caught.value.details == {
        "code": "MISSING_SCOPE",
        "missingScope": WRITE,
        "requiredScopes": [WRITE],
    }


def test_method_without_scope_requires_admin() -> None:
    with pytest.raises(ScopeRefused, match=ADMIN):
        authorize(
            role=Role.OPERATOR, scopes=(WRITE,), method_role=MethodRole.OPERATOR, method_scope=None
        )
