"""sd_notify's pure parts: where to send, how often to ping, what a message is."""

from __future__ import annotations

from clawgate.service.sd_notify import (
    READY,
    notify_address,
    status_message,
    watchdog_interval_s,
)


def test_a_path_is_used_as_it_is() -> None:
    assert notify_address({"NOTIFY_SOCKET": "/run/user/1000/systemd/notify"}) == (
        "/run/user/1000/systemd/notify"
    )


def test_an_abstract_name_starts_with_nul() -> None:
    assert notify_address({"NOTIFY_SOCKET": "@/org/systemd/notify"}) == "\0/org/systemd/notify"


def test_no_unset_empty_or_relative_socket_means_no_notify() -> None:
    for environ in ({}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "@"}, {"NOTIFY_SOCKET": "x"}):
        assert notify_address(environ) is None


def test_the_watchdog_pings_at_half_its_period() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, pid=7) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7) == 15.0


def test_no_watchdog_for_another_pid_or_a_bad_period() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7) is None
    for usec in ("", "0", "-5", "soon"):
        assert watchdog_interval_s({"WATCHDOG_USEC": usec}, pid=7) is None


def test_a_message_is_newline_separated_fields_with_a_one_line_status() -> None:
    assert status_message(READY) == b"READY=1"
    assert (
        status_message(READY, status="serving\non  port 1") == b"READY=1\nSTATUS=serving on port 1"
    )
