"""Take the README's WebChat screenshot: `python -m tests.browser.screenshot docs/webchat.png`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.harness import launch_chromium, new_daemon

VIEWPORT = {"width": 1100, "height": 640}
CHATS = (
    "Plan a quiet weekend by the sea",
    "Hello from WebChat! The echo agent streams every word back as it arrives.",
)
STREAMING = (
    "This reply is still streaming, one word at a time, which is why the Stop button shows;"
    " press it, or Escape, to end the run early and keep what has arrived so far."
)


def say(page: Page, text: str) -> None:
    """Send `text` with the keyboard and wait for the whole echo."""
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")
    reply = page.locator('#messages .message[data-role="assistant"]').last
    expect(reply).to_have_attribute("data-state", "done", timeout=20_000)


def main(target: Path) -> None:
    """Run a gateway, hold two short chats and catch a third reply mid-stream."""
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        daemon = new_daemon(Path(scratch) / "home")
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=VIEWPORT, color_scheme="light")
            page.goto(daemon.link)
            expect(page.locator("#status")).to_have_text("Connected")
            for text in CHATS:
                page.get_by_role("button", name="New chat").click()
                say(page, text)
            page.get_by_label("Message").fill(STREAMING)
            page.get_by_label("Message").press("Enter")
            reply = page.locator('#messages .message[data-role="assistant"]').last
            expect(reply.locator(".text")).to_contain_text("still streaming")
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target))
        finally:
            browser.close()
            daemon.stop()
    print(f"wrote {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/webchat.png"))
