"""The personal WhatsApp session's health policy (pure: time is passed in)."""

from __future__ import annotations

from clawgate.channels.whatsapp_watch import LinkWatch, Verdict, WatchPolicy

POLICY = WatchPolicy(reconnect_grace_s=60.0, link_timeout_s=180.0)


def test_a_new_session_waits_for_its_first_connect_within_the_grace() -> None:
    watch = LinkWatch(POLICY, now=0.0)
    assert watch.verdict(59.0) is Verdict.OK
    assert watch.verdict(61.0) is Verdict.RESTART


def test_a_short_drop_is_left_to_whatsmeows_own_reconnect() -> None:
    watch = LinkWatch(POLICY, now=0.0)
    watch.up()
    watch.down(100.0)
    assert watch.verdict(150.0) is Verdict.OK
    watch.up()
    assert watch.verdict(500.0) is Verdict.OK


def test_a_drop_longer_than_the_grace_asks_for_a_rebuild() -> None:
    watch = LinkWatch(POLICY, now=0.0)
    watch.up()
    watch.down(100.0)
    watch.down(130.0)  # a second report of the same outage keeps its start
    assert watch.verdict(161.0) is Verdict.RESTART


def test_linking_is_healthy_until_the_link_timeout_then_fails_for_good() -> None:
    watch = LinkWatch(POLICY, now=0.0)
    watch.qr_shown(10.0)
    watch.qr_shown(30.0)  # a rotated code does not restart the clock
    assert watch.verdict(189.0) is Verdict.OK
    assert watch.verdict(191.0) is Verdict.FAIL
    assert watch.failure is not None and "channels login whatsapp" in watch.failure


def test_a_scan_ends_linking() -> None:
    watch = LinkWatch(POLICY, now=0.0)
    watch.qr_shown(0.0)
    watch.up()
    assert watch.verdict(1000.0) is Verdict.OK


def test_terminal_events_fail_with_a_reason_that_says_what_to_do() -> None:
    cases = {
        "logged this device out": lambda w: w.logged_out(),
        "took over this session": lambda w: w.replaced(),
        "banned this number temporarily (code 2, 3600 s left)": lambda w: w.banned(2, 3600),
        "upgrade": lambda w: w.outdated(),
        "refused the connection (reason 401": lambda w: w.connect_failed(401, "logged out"),
    }
    for expected, event in cases.items():
        watch = LinkWatch(POLICY, now=0.0)
        watch.up()
        event(watch)
        assert watch.verdict(1.0) is Verdict.FAIL
        assert watch.failure is not None and expected in watch.failure


def test_the_first_failure_is_the_one_reported() -> None:
    watch = LinkWatch(POLICY, now=0.0)
    watch.replaced()
    watch.logged_out()
    assert watch.failure is not None and "took over" in watch.failure
