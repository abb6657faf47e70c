"""Closed exec approvals, pure: OpenClaw's snapshot shape and the history cursor."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from clawgate.gateway import control_ui
from clawgate.gateway.methods import approvals
from clawgate.protocol.approval_history import (
    ApprovalOutcome,
    ClosedApproval,
    HistoryCursor,
    InvalidCursorError,
    ResolverKind,
    history_command,
)
from clawgate.protocol.limits import APPROVAL_HISTORY_COMMAND_MAX_CHARS

CLOSED = ClosedApproval(
    id="a/1",
    node_id="node-1",
    command="rm -rf /tmp/x",
    requested_by="cli",
    outcome=ApprovalOutcome.ALLOW_ONCE,
    resolver_kind=ResolverKind.DEVICE,
    resolver_id="dev-1",
    resolved_by="Ops laptop",
    created_at_ms=1_000,
    expires_at_ms=121_000,
    resolved_at_ms=5_000,
)


def closed(outcome: ApprovalOutcome) -> ClosedApproval:
    return dataclasses.replace(CLOSED, outcome=outcome)


def test_an_allowed_approval_is_allowed_by_the_user_with_its_decision() -> None:
    item = closed(ApprovalOutcome.ALLOW_ALWAYS).snapshot("/control")
    assert (item["status"], item["reason"], item["decision"]) == ("allowed", "user", "allow-always")


def test_a_denied_approval_is_denied_by_the_user() -> None:
    item = closed(ApprovalOutcome.DENY).snapshot("/control")
    assert (item["status"], item["reason"], item["decision"]) == ("denied", "user", "deny")


def test_an_expired_approval_timed_out_and_has_no_decision() -> None:
    item = closed(ApprovalOutcome.EXPIRED).snapshot("/control")
    assert (item["status"], item["reason"]) == ("expired", "timeout")
    assert "decision" not in item


def test_a_cancelled_approval_was_aborted_by_its_run() -> None:
    item = closed(ApprovalOutcome.CANCELLED).snapshot("/control")
    assert (item["status"], item["reason"]) == ("cancelled", "run-aborted")


def test_the_snapshot_names_the_command_node_resolver_and_times() -> None:
    item = CLOSED.snapshot("/control")
    assert item["presentation"] == {
        "kind": "exec",
        "commandText": "rm -rf /tmp/x",
        "host": "node",
        "nodeId": "node-1",
        "allowedDecisions": ["allow-once", "allow-always", "deny"],
    }
    assert item["resolver"] == {"kind": "device", "id": "dev-1"}
    assert (item["createdAtMs"], item["expiresAtMs"], item["resolvedAtMs"]) == (
        1_000,
        121_000,
        5_000,
    )


def test_the_url_path_escapes_the_id_under_the_control_ui() -> None:
    assert CLOSED.snapshot("/control")["urlPath"] == "/control/approve/a%2F1"


def test_a_gateway_closed_approval_names_no_resolver_id() -> None:
    gateway_closed = dataclasses.replace(
        CLOSED, resolver_kind=ResolverKind.SYSTEM, resolver_id=None
    )
    assert gateway_closed.snapshot("/control")["resolver"] == {"kind": "system"}


def test_a_long_command_line_is_cut_to_the_limit() -> None:
    kept = history_command(["echo", "x" * APPROVAL_HISTORY_COMMAND_MAX_CHARS])
    assert len(kept) == APPROVAL_HISTORY_COMMAND_MAX_CHARS and kept.endswith("…")


def test_a_short_command_line_is_kept_whole() -> None:
    assert history_command(["echo", "a b"]) == "echo 'a b'"


def test_a_record_comes_back_as_it_was() -> None:
    assert ClosedApproval.from_record(CLOSED.record()) == CLOSED


def test_a_cursor_decodes_to_what_was_encoded() -> None:
    cursor = HistoryCursor(5_000, "a/1")
    assert HistoryCursor.decode(cursor.encode()) == cursor


def test_a_cursor_is_openclaws_unpadded_base64url_json() -> None:
    token = HistoryCursor(5, "x").encode()
    assert "=" not in token
    assert base64.urlsafe_b64decode(token + "==") == b'{"v":1,"resolvedAtMs":5,"id":"x"}'


@pytest.mark.parametrize(
    "token",
    [
        "not base64 !",
        HistoryCursor(5, "x").encode() + "=",  # padded
        base64.urlsafe_b64encode(b'{"v":2,"resolvedAtMs":5,"id":"x"}').decode().rstrip("="),
        base64.urlsafe_b64encode(b'{"v":1,"resolvedAtMs":-1,"id":"x"}').decode().rstrip("="),
        base64.urlsafe_b64encode(b'{"v":1,"resolvedAtMs":5,"id":""}').decode().rstrip("="),
        base64.urlsafe_b64encode(b'{"v":1,"resolvedAtMs":5,"id":"x","more":1}')
        .decode()
        .rstrip("="),
        base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("="),
        "A" * 600,
    ],
)
def test_a_cursor_not_issued_here_is_refused(token: str) -> None:
    with pytest.raises(InvalidCursorError):
        HistoryCursor.decode(token)


def test_history_links_point_where_the_control_ui_is_served() -> None:
    assert approvals.CONTROL_UI_MOUNT == control_ui.MOUNT
