"""The §2.8 request timeout table, one object for the daemon and the plugin SDK."""

from __future__ import annotations

import pytest

import clawgate.ipc
from clawgate.ipc import registry
from clawgate.protocol.ipc.timeouts import DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_TIMEOUTS_S


@pytest.mark.parametrize(
    ("methods", "seconds"),
    [
        (("register", "ping"), 10.0),
        (("integration.install",), 300.0),
        (("integration.remove",), 120.0),
        (("integration.configure", "integration.activate", "integration.deactivate"), 60.0),
        (("integration.health", "integration.list"), 15.0),
    ],
)
def test_spec_row(methods: tuple[str, ...], seconds: float) -> None:
    assert [DEFAULT_TIMEOUTS_S[method] for method in methods] == [seconds] * len(methods)


def test_any_other_method_waits_30_s_and_command_execute_has_no_row() -> None:
    assert DEFAULT_REQUEST_TIMEOUT_S == 30.0
    assert len(DEFAULT_TIMEOUTS_S) == 9
    assert "command.execute" not in DEFAULT_TIMEOUTS_S


def test_daemon_exports_the_same_table() -> None:
    assert clawgate.ipc.DEFAULT_TIMEOUTS_S is DEFAULT_TIMEOUTS_S
    assert registry.DEFAULT_TIMEOUTS_S is DEFAULT_TIMEOUTS_S
    assert registry.DEFAULT_REQUEST_TIMEOUT_S is DEFAULT_REQUEST_TIMEOUT_S
