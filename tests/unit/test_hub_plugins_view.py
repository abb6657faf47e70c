"""The hub shows a daemon's plugins from its freshest report, not its registration."""

from __future__ import annotations

from clawgate.hub.store import plugins_view

REGISTERED = [{"name": "dir", "version": "1.0", "capabilities": ["integrations"]}]


def test_without_a_report_the_registered_plugins_follow_the_daemons_link() -> None:
    assert plugins_view(REGISTERED, None, True) == [{**REGISTERED[0], "connected": True}]
    assert plugins_view(REGISTERED, None, False) == [{**REGISTERED[0], "connected": False}]


def test_a_plugin_the_last_report_lists_as_gone_shows_offline() -> None:
    report = {"plugins": [{"name": "dir", "version": "1.0", "connected": False}]}
    [plugin] = plugins_view(REGISTERED, report, True)
    assert plugin["connected"] is False
    assert plugin["capabilities"] == ["integrations"]


def test_a_registered_plugin_missing_from_a_newer_report_shows_offline() -> None:
    assert plugins_view(REGISTERED, {"plugins": []}, True) == [
        {**REGISTERED[0], "connected": False}
    ]


def test_a_plugin_that_joined_after_registration_shows_from_the_report() -> None:
    report = {"plugins": [{"name": "new", "version": "2.0", "connected": True}]}
    names = {p["name"]: p["connected"] for p in plugins_view(REGISTERED, report, True)}
    assert names == {"new": True, "dir": False}


def test_no_plugin_shows_connected_while_the_daemon_is_offline() -> None:
    report = {"plugins": [{"name": "dir", "version": "1.0", "connected": True}]}
    assert plugins_view(REGISTERED, report, False)[0]["connected"] is False
