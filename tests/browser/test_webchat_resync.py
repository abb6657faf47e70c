"""WebChat against a scripted gateway: the connect frame, seq gaps, reconnects, refusals."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.scripted_gateway import MAIN_KEY, ScriptedGateway, message

SECRET = "scripted-secret-42"


def open_page(page: Page, scripted: ScriptedGateway) -> None:
    page.goto(f"http://127.0.0.1:{scripted.port}/#token={SECRET}")


# Every status line the page shows, recorded by the page: a fast reconnect outruns polling.
RECORD_STATUS = """() => {
  window.statuses = [];
  const status = document.getElementById("status");
  new MutationObserver(() => window.statuses.push(status.textContent))
    .observe(status, { subtree: true, childList: true, characterData: true });
}"""


def refusal(code: str, message_text: str, **extra: Any) -> dict[str, Any]:
    return {"code": "INVALID_REQUEST", "message": message_text, "details": {"code": code}, **extra}


def test_the_token_travels_in_the_connect_frame_never_in_the_url(
    page: Page, scripted: ScriptedGateway
) -> None:
    open_page(page, scripted)
    expect(page.locator("#status")).to_have_text("Connected")
    params = scripted.calls("connect")[0]["params"]
    assert params["client"]["id"] == "webchat-ui" and params["client"]["mode"] == "webchat"
    assert params["role"] == "operator"
    assert params["scopes"] == [
        "operator.read",
        "operator.write",
        "operator.admin",
        "operator.approvals",
    ]
    assert params["auth"] == {"token": SECRET}
    assert (params["minProtocol"], params["maxProtocol"]) == (3, 4)
    assert scripted.upgrade_urls == ["/"]
    # "Connected" shows at hello-ok; the page's first requests follow it.
    history = wait_for_calls(scripted, "chat.history")
    assert wait_for_calls(scripted, "sessions.subscribe")
    assert history[0]["params"]["sessionKey"] == MAIN_KEY


def wait_for_calls(scripted: ScriptedGateway, method: str, timeout: float = 5.0) -> list[Any]:
    """Return the page's `method` requests once there is one (the page runs on its own)."""
    deadline = time.monotonic() + timeout
    while not (calls := scripted.calls(method)):
        assert time.monotonic() < deadline, f"the page sent no {method}"
        time.sleep(0.02)
    return calls


def test_a_seq_gap_reloads_the_history(page: Page, scripted: ScriptedGateway) -> None:
    scripted.history = [message("user", "one"), message("assistant", "one")]
    open_page(page, scripted)
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(2)
    scripted.history += [message("user", "two"), message("assistant", "two")]
    scripted.push("tick", {"ts": 1}, seq=1)
    scripted.push("tick", {"ts": 2}, seq=3)  # seq 2 never came: the view is stale
    expect(messages).to_have_count(4)
    # Only the gap refreshed: seq 1 after hello-ok is the expected start.
    assert len(scripted.calls("chat.history")) == 2


def test_a_dropped_socket_reconnects_and_resyncs(page: Page, scripted: ScriptedGateway) -> None:
    scripted.history = [message("user", "before")]
    open_page(page, scripted)
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(1)
    scripted.history.append(message("assistant", "while away"))
    scripted.push("tick", {"ts": 1}, seq=1)
    page.evaluate(RECORD_STATUS)
    scripted.drop(1012)
    expect(messages).to_have_count(2)
    expect(page.locator("#status")).to_have_text("Connected")
    statuses = page.evaluate("() => window.statuses")
    assert statuses[0].startswith("Reconnecting") and "gateway is restarting" in statuses[0]
    assert len(scripted.calls("connect")) == 2
    # The new connection counts seq from 1 again; a session event proves it was taken.
    scripted.push("tick", {"ts": 2}, seq=1)
    row = {"key": "agent:main:side", "sessionId": "s2", "agentId": "main", "label": "Side"}
    changed = {"sessionKey": "agent:main:side", "reason": "created", **row}
    scripted.push("sessions.changed", {**changed, "createdAt": 1, "updatedAt": 2}, seq=2)
    expect(page.get_by_role("button", name="Side")).to_be_visible()
    assert len(scripted.calls("chat.history")) == 2


def test_a_rate_limited_login_says_how_long_to_wait(page: Page, scripted: ScriptedGateway) -> None:
    scripted.refusals.append(
        refusal(
            "AUTH_RATE_LIMITED",
            "unauthorized: too many failed attempts (retry later)",
            retryable=True,
            retryAfterMs=42_000,
        )
    )
    open_page(page, scripted)
    expect(page.locator("#status")).to_have_text("Auth failed: too many attempts")
    expect(page.get_by_role("alert")).to_contain_text("wait 42 seconds")
    expect(page.get_by_label("Token or password")).to_be_visible()


def test_a_refused_origin_names_the_setting_to_change(
    page: Page, scripted: ScriptedGateway
) -> None:
    scripted.refusals.append(refusal("CONTROL_UI_ORIGIN_NOT_ALLOWED", "origin not allowed"))
    open_page(page, scripted)
    expect(page.locator("#status")).to_have_text("Not connected")
    expect(page.get_by_role("alert")).to_contain_text("allowed_origins")


def test_a_password_gateway_gets_the_secret_as_password(
    page: Page, scripted: ScriptedGateway
) -> None:
    scripted.refusals.append(
        refusal("AUTH_PASSWORD_MISSING", "unauthorized: gateway password missing")
    )
    open_page(page, scripted)
    expect(page.locator("#status")).to_have_text("Connected")
    first, second = (call["params"]["auth"] for call in scripted.calls("connect"))
    assert first == {"token": SECRET} and second == {"password": SECRET}


def test_earlier_messages_load_above_on_request(page: Page, scripted: ScriptedGateway) -> None:
    scripted.older = [message("user", "oldest"), message("assistant", "oldest")]
    scripted.history = [message("user", "newest")]
    open_page(page, scripted)
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(1)
    earlier = page.get_by_role("button", name="Show earlier messages")
    earlier.focus()
    page.keyboard.press("Enter")
    expect(messages).to_have_count(3)
    expect(messages.first.locator(".text")).to_have_text("oldest")
    expect(earlier).to_be_hidden()
    expect(page.locator("#messages")).to_be_focused()
    assert scripted.calls("chat.history")[-1]["params"]["before"] == 7


def test_with_nothing_older_there_is_no_earlier_button(
    page: Page, scripted: ScriptedGateway
) -> None:
    scripted.history = [message("user", "only")]
    open_page(page, scripted)
    expect(page.locator("#messages .message")).to_have_count(1)
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()
