"""WebChat in a real browser: headless Debian Chromium against a real `clawgate gateway run`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import screenshot
from tests.browser.harness import TOKEN, Daemon, new_daemon

# Twenty-four words: at 50 ms a word the reply streams for over a second.
MESSAGE = " ".join(f"word{index:02d}" for index in range(24))
LONG_MESSAGE = " ".join(f"long{index:03d}" for index in range(400))

# Every distinct (state, text) an assistant bubble goes through, recorded by the page itself
# so no intermediate state is missed between two polls.
RECORD_STATES = """() => {
  window.seen = [];
  const log = document.getElementById("messages");
  new MutationObserver(() => {
    for (const item of log.querySelectorAll('.message[data-role="assistant"]')) {
      const entry = [item.dataset.state, item.querySelector(".text").textContent,
                     item.getAttribute("aria-busy")];
      const last = window.seen[window.seen.length - 1];
      if (!last || last.join("|") !== entry.join("|")) window.seen.push(entry);
    }
  }).observe(log, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One gateway for the module; every test works in chats of its own."""
    running = new_daemon(tmp_path_factory.mktemp("webchat") / "home")
    yield running
    running.stop()


def open_chat(page: Page, daemon: Daemon) -> None:
    """Open the page with the token link and start a new chat."""
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#chat-title")).to_have_text("New chat")


def send(page: Page, text: str) -> None:
    """Type `text` into the message box and press Enter, as a keyboard user does."""
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def assistant(page: Page) -> Any:
    """The last assistant bubble."""
    return page.locator('#messages .message[data-role="assistant"]').last


def test_the_token_moves_from_the_address_bar_into_session_storage(
    page: Page, daemon: Daemon
) -> None:
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    assert page.url == daemon.http_url
    assert page.evaluate("() => sessionStorage.getItem('clawgate.webchat.secret')") == TOKEN


def test_a_reply_streams_word_by_word_and_survives_a_reload(page: Page, daemon: Daemon) -> None:
    open_chat(page, daemon)
    page.evaluate(RECORD_STATES)
    send(page, MESSAGE)
    reply = assistant(page)
    expect(reply).to_have_attribute("data-state", "done")
    expect(reply.locator(".text")).to_have_text(MESSAGE)
    seen: list[list[str | None]] = page.evaluate("() => window.seen")
    streamed = [text for state, text, _ in seen if state == "streaming" and text]
    assert all(MESSAGE.startswith(text) for text in streamed), seen
    assert any(len(text) < len(MESSAGE) for text in streamed), f"no partial state in {seen}"
    # Screen readers hear the reply once it settles, not every delta.
    assert all(busy == "true" for state, _, busy in seen if state == "streaming")
    assert seen[-1] == ["done", MESSAGE, None]
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    # The first message names the chat, cut at a word boundary to 48 characters.
    title = "word00 word01 word02 word03 word04 word05…"
    expect(page.locator("#chat-title")).to_have_text(title)

    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    expect(page.locator("#chat-title")).to_have_text(title)
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(2)
    expect(messages.nth(0)).to_have_attribute("data-role", "user")
    expect(messages.nth(0).locator(".text")).to_have_text(MESSAGE)
    expect(messages.nth(1).locator(".text")).to_have_text(MESSAGE)
    current = page.locator('#session-list [aria-current="page"]')
    expect(current).to_contain_text(title)


def test_stop_aborts_the_reply_mid_stream(page: Page, daemon: Daemon) -> None:
    open_chat(page, daemon)
    send(page, LONG_MESSAGE)
    reply = assistant(page)
    expect(reply.locator(".text")).to_have_text(re.compile(r"^long000"))
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    stop.click()
    expect(reply).to_have_attribute("data-state", "aborted")
    expect(reply.locator(".note")).to_have_text("Stopped")
    expect(stop).to_be_hidden()
    text = reply.locator(".text").text_content() or ""
    assert LONG_MESSAGE.startswith(text) and len(text) < len(LONG_MESSAGE)
    # The gateway is free again: the next message gets its whole reply.
    send(page, "after the stop")
    expect(assistant(page).locator(".text")).to_have_text("after the stop")
    expect(assistant(page)).to_have_attribute("data-state", "done")


def test_a_wrong_token_shows_the_auth_error_and_the_form_recovers(
    page: Page, daemon: Daemon
) -> None:
    page.goto(f"{daemon.http_url}#token=not-the-token")
    expect(page.locator("#status")).to_have_text("Auth failed: wrong token")
    expect(page.get_by_role("alert")).to_contain_text("rejected this token")
    field = page.get_by_label("Token or password")
    expect(field).to_be_focused()
    assert page.evaluate("() => sessionStorage.getItem('clawgate.webchat.secret')") is None
    field.fill(TOKEN)
    field.press("Enter")
    expect(page.locator("#status")).to_have_text("Connected")
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(page.get_by_label("Message")).to_be_visible()


def test_a_gateway_restart_reconnects_and_reloads_the_history(
    page: Page, daemon: Daemon, tmp_path: Path
) -> None:
    open_chat(page, daemon)
    send(page, "kept across restarts")
    expect(assistant(page)).to_have_attribute("data-state", "done")
    daemon.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    daemon.start()
    expect(page.locator("#status")).to_have_text("Connected", timeout=20_000)
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(2)
    expect(messages.nth(1).locator(".text")).to_have_text("kept across restarts")


# Every status line, taken from the mutation records: several may land between two polls.
RECORD_STATUS = """() => {
  window.statuses = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) window.statuses.push(node.textContent);
    }
  }).observe(document.getElementById("status"), { childList: true });
}"""


def advance_until(page: Page, text: str | re.Pattern[str], step_ms: int = 100) -> None:
    """Move the page's clock on in small steps until the status line shows `text`."""
    status = page.locator("#status")
    for _ in range(600):  # 60 s of page time at most
        now = status.text_content() or ""
        if text.search(now) if isinstance(text, re.Pattern) else now == text:
            return
        page.clock.run_for(step_ms)
    raise AssertionError(f"the status never showed {text!r}; last: {now!r}")


def test_the_reconnect_countdown_counts_each_second_until_the_gateway_is_back(
    page: Page, daemon: Daemon
) -> None:
    # The page's clock moves only when the test moves it; the backoff always takes its longest
    # wait: 0.5, 1, 2, 4, 8 s.
    page.clock.install(time=1_000_000)
    page.clock.pause_at(1_001_000)
    page.add_init_script("Math.random = () => 0.999;")
    page.goto(daemon.link)
    advance_until(page, "Connected")
    page.evaluate(RECORD_STATUS)
    daemon.stop()
    advance_until(page, re.compile(r"^Reconnecting in 4 s…"))
    for seconds in (4, 3, 2, 1):
        expect(page.locator("#status")).to_have_text(
            f"Reconnecting in {seconds} s… (the connection was lost)"
        )
        page.clock.run_for(1000)
    daemon.start()
    advance_until(page, "Connected")
    # "Reconnecting…" is the attempt itself: the refused connection replaces it at once.
    statuses: list[str] = page.evaluate("() => window.statuses")
    counted = [
        "Reconnecting in 4 s… (the connection was lost)",
        "Reconnecting in 3 s… (the connection was lost)",
        "Reconnecting in 2 s… (the connection was lost)",
        "Reconnecting in 1 s… (the connection was lost)",
        "Reconnecting…",
    ]
    start = statuses.index(counted[0])
    assert statuses[start : start + len(counted)] == counted, statuses


def png_size(path: Path) -> tuple[int, int]:
    """Return a PNG's width and height, read from its IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", path
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_the_readme_screenshots_are_taken_at_desktop_and_phone_sizes(
    browser: Browser, daemon: Daemon, tmp_path: Path
) -> None:
    desktop, phone = screenshot.take(browser, daemon, tmp_path)
    assert (desktop.name, png_size(desktop)) == ("webchat.png", (1280, 800))
    assert (phone.name, png_size(phone)) == ("webchat-phone.png", (390, 844))
