"""Take the README's WebChat screenshots: `python -m tests.browser.screenshot docs`.

Writes webchat.png (1280x800) and webchat-phone.png (390x844, a phone) into the folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Final

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.harness import Daemon, launch_chromium, new_daemon

DESKTOP: Final = {"width": 1280, "height": 800}
PHONE: Final = {"width": 390, "height": 844}
CHATS: Final = (
    "Plan a quiet weekend by the sea",
    "Hello from WebChat! The echo agent streams every word back as it arrives.",
)
STREAMING: Final = (
    "This reply is still streaming, one word at a time, which is why the Stop button shows;"
    " press it, or Escape, to end the run early and keep what has arrived so far."
)
STREAMING_PHONE: Final = (
    "On a phone the chats sit above the conversation and the message box stays at the"
    " bottom of the screen while this reply streams in, one word at a time."
)


def say(page: Page, text: str) -> None:
    """Send `text` with the keyboard and wait for the whole echo."""
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")
    reply = page.locator('#messages .message[data-role="assistant"]').last
    expect(reply).to_have_attribute("data-state", "done", timeout=20_000)


def catch_mid_stream(page: Page, text: str, target: Path) -> None:
    """Send `text` and take the picture while its reply is still arriving."""
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")
    reply = page.locator('#messages .message[data-role="assistant"]').last
    expect(reply.locator(".text")).to_contain_text(" ".join(text.split()[:4]))
    expect(reply).to_have_attribute("data-state", "streaming")
    page.screenshot(path=str(target))


def take(browser: Browser, daemon: Daemon, folder: Path) -> tuple[Path, Path]:
    """Hold two short chats at desktop size, then look at the second one on a phone."""
    folder.mkdir(parents=True, exist_ok=True)
    desktop, phone = folder / "webchat.png", folder / "webchat-phone.png"
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    for text in CHATS:
        page.get_by_role("button", name="New chat").click()
        say(page, text)
    catch_mid_stream(page, STREAMING, desktop)
    # Let that reply end: the phone writes in the same chat, and its run would queue behind it.
    reply = page.locator('#messages .message[data-role="assistant"]').last
    expect(reply).to_have_attribute("data-state", "done", timeout=60_000)
    context.close()
    context = browser.new_context(
        viewport=PHONE, color_scheme="light", is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    page.locator("#session-list .session").filter(has_text="Hello from WebChat").click()
    expect(page.locator("#messages .message")).not_to_have_count(0)
    catch_mid_stream(page, STREAMING_PHONE, phone)
    context.close()
    return desktop, phone


def main(folder: Path) -> None:
    """Run a gateway and Chromium, and write both pictures into `folder`."""
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        daemon = new_daemon(Path(scratch) / "home")
        browser = launch_chromium(playwright)
        try:
            written = take(browser, daemon, folder)
        finally:
            browser.close()
            daemon.stop()
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
