"""The WebChat Automation view in a real browser against a real `clawgate gateway run`.

The browser runs in New York and the gateway's jobs in Berlin, so the page must show the
next run on the browser's own clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import watched_tab
from tests.browser.harness import TOKEN, Daemon, new_daemon
from tests.e2e.test_cli import run_cli

BROWSER_ZONE = "America/New_York"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One gateway for the module; every test adds jobs of its own."""
    running = new_daemon(tmp_path_factory.mktemp("automation") / "home")
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A tab in New York (en-US) that fails the test on a script error or CSP block."""
    with watched_tab(browser, timezone_id=BROWSER_ZONE, locale="en-US") as tab:
        yield tab


def call(daemon: Daemon, method: str, params: Any = None) -> Any:
    """Call the gateway as an admin operator, outside the page (Playwright owns this loop)."""
    url = f"ws://127.0.0.1:{daemon.port}/"
    done = run_cli(
        daemon.home,
        "call",
        method,
        "--params",
        json.dumps(params or {}),
        "--json",
        "--url",
        url,
        CLAWGATE_GATEWAY_TOKEN=TOKEN,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def add_job(daemon: Daemon, name: str, schedule: dict[str, Any]) -> dict[str, Any]:
    payload = {"kind": "agentTurn", "message": f"{name} says hello"}
    job: dict[str, Any] = call(
        daemon, "cron.add", {"name": name, "schedule": schedule, "payload": payload}
    )
    return job


def open_automation(page: Page, daemon: Daemon) -> None:
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    page.get_by_role("button", name="Automation").click()
    expect(page.get_by_role("heading", name="Automation")).to_be_visible()


def job_row(page: Page, name: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile(name)))


def test_jobs_show_their_schedule_and_next_run_in_the_browsers_time_zone(
    page: Page, daemon: Daemon
) -> None:
    job = add_job(
        daemon, "morning brief", {"kind": "cron", "expr": "0 8 * * *", "tz": "Europe/Berlin"}
    )
    open_automation(page, daemon)
    row = job_row(page, "morning brief")
    expect(row).to_contain_text("cron 0 8 * * * (Europe/Berlin)")
    expect(row).to_contain_text("never ran")
    expect(row).to_contain_text("On")
    next_run = job["state"]["nextRunAtMs"]
    local = datetime.fromtimestamp(next_run / 1000, UTC).astimezone(ZoneInfo(BROWSER_ZONE))
    time = row.locator("time.next-run")
    expect(time).to_have_attribute(
        "datetime", datetime.fromtimestamp(next_run / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    )
    expect(time).to_contain_text(f"{local:%I:%M %p} {local.tzname()}")


def test_run_now_shows_the_outcome_as_it_happens(page: Page, daemon: Daemon) -> None:
    add_job(daemon, "inbox check", {"kind": "every", "everyMs": 3_600_000})
    open_automation(page, daemon)
    row = job_row(page, "inbox check")
    expect(row).to_contain_text("never ran")
    page.get_by_role("button", name="Run inbox check now").click()
    expect(page.locator("#automation-note")).to_have_text("Started inbox check.")
    expect(row.locator(".last-run")).to_have_attribute("data-status", "ok")
    expect(row.locator(".last-run")).to_contain_text("ok")


def test_disable_and_enable_switch_the_job_on_the_gateway(page: Page, daemon: Daemon) -> None:
    job = add_job(daemon, "nightly", {"kind": "cron", "expr": "0 3 * * *"})
    open_automation(page, daemon)
    row = job_row(page, "nightly")
    page.get_by_role("button", name="Disable nightly").click()
    expect(row.locator(".job-state")).to_have_text("Off")
    listed = call(daemon, "cron.list", {"includeDisabled": True})["jobs"]
    assert next(j for j in listed if j["id"] == job["id"])["enabled"] is False
    page.get_by_role("button", name="Enable nightly").click()
    expect(row.locator(".job-state")).to_have_text("On")
    expect(row.locator("time.next-run")).to_be_visible()


def test_the_heartbeat_state_shows_its_last_beat_and_switches(page: Page, daemon: Daemon) -> None:
    open_automation(page, daemon)
    expect(page.locator("#heartbeat-state")).to_have_text("On, every 30m.")
    call(daemon, "wake", {"mode": "now", "text": "the build broke"})
    expect(page.locator("#heartbeat-last")).to_contain_text(
        "Last heartbeat: sent to agent:main:main"
    )
    page.get_by_role("button", name="Turn heartbeats off").click()
    expect(page.locator("#heartbeat-state")).to_have_text("Off: scheduled heartbeats do not run.")
    assert call(daemon, "status")["heartbeat"]["agents"][0]["enabled"] is False
    page.get_by_role("button", name="Turn heartbeats on").click()
    expect(page.locator("#heartbeat-state")).to_have_text("On, every 30m.")


def test_the_view_survives_a_reload_and_chat_is_one_click_away(page: Page, daemon: Daemon) -> None:
    add_job(daemon, "weekly review", {"kind": "cron", "expr": "0 17 * * 5"})
    open_automation(page, daemon)
    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    expect(job_row(page, "weekly review")).to_be_visible()
    page.get_by_role("button", name="Chat", exact=True).click()
    expect(page.get_by_label("Message")).to_be_visible()
    expect(page.locator("#automation")).to_be_hidden()
