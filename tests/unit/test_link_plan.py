"""When the control link reconnects, and when it stops (control-plane spec §3.2, §3.7)."""

from __future__ import annotations

import pytest

from clawgate.cloud.link import LinkState, check_url, reconnect_plan


def plan(**fields: object):  # type: ignore[no-untyped-def]
    base: dict[str, object] = {
        "failures": 0,
        "close_code": None,
        "http_status": None,
        "retry_after_s": None,
        "uptime_s": None,
        "rng": lambda low, high: high,  # the ceiling of full jitter
    }
    return reconnect_plan(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields"), [{"http_status": 401}, {"http_status": 403}, {"close_code": 4401}]
)
def test_a_refused_key_stops_retrying(fields: dict[str, object]) -> None:
    assert plan(**fields).state is LinkState.LOGIN_REQUIRED


@pytest.mark.parametrize(("fields"), [{"http_status": 426}, {"close_code": 4426}])
def test_no_common_version_stops_retrying(fields: dict[str, object]) -> None:
    assert plan(**fields).state is LinkState.UPGRADE_REQUIRED


def test_backoff_doubles_to_a_60_second_cap_with_full_jitter() -> None:
    delays = [plan(failures=k).delay_s for k in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert plan(failures=3, rng=lambda low, high: low).delay_s == 0


def test_a_session_up_for_a_minute_resets_the_backoff() -> None:
    assert plan(failures=6, uptime_s=61.0).delay_s == 1
    assert plan(failures=6, uptime_s=59.0).delay_s == 60


def test_hub_restart_reconnects_at_once_and_keeps_the_backoff() -> None:
    assert (plan(close_code=1012).delay_s, plan(close_code=1012, failures=3).failures) == (0.0, 3)
    assert plan(close_code=1012, failures=3).delay_s == 0.0


def test_a_replaced_session_waits_up_to_the_cap_and_stays_there() -> None:
    replaced = plan(close_code=4409)
    assert replaced.delay_s == 60
    assert plan(failures=replaced.failures).delay_s == 60


def test_retry_after_is_a_floor() -> None:
    assert plan(http_status=503, retry_after_s=30.0).delay_s == 30.0
    assert plan(http_status=503, retry_after_s=0.5, failures=3).delay_s == 8


@pytest.mark.parametrize(
    ("url", "insecure", "problem"),
    [
        ("wss://hub.example/v1/daemon", False, None),
        ("ws://127.0.0.1:18800/v1/daemon", False, None),
        ("ws://hub.example/v1/daemon", False, "wss://"),
        ("ws://hub.example/v1/daemon", True, None),
        ("https://hub.example/", False, "ws:// or wss://"),
        ("wss://hub.example/v1/daemon?key=abc", False, "query"),
    ],
)
def test_url_rules(url: str, insecure: bool, problem: str | None) -> None:
    found = check_url(url, insecure)
    assert (found is None) if problem is None else (found is not None and problem in found)
