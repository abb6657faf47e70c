"""Take the README's Control UI screenshot: OpenClaw's chat view against a real clawgate.

`python -m tests.browser.control_ui_screenshot docs/control-ui-chat.png` (needs `make openclaw`;
the PNG is then squeezed with `pngquant` when it is installed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.browser.harness import ECHO_DELAY_MS, TOKEN, Daemon, launch_chromium
from tests.browser.test_control_ui import BUNDLE
from tests.e2e.test_cli import free_port

VIEWPORT = {"width": 1280, "height": 800}
CHATS = (
    "Hello from OpenClaw's Control UI",
    "The echo agent behind clawgate streams every word of this message back.",
)


def start_daemon(home: Path) -> Daemon:
    """A gateway serving the installed bundle at /control/, with the streaming echo agent."""
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\ncontrol_ui_root = "{BUNDLE}"\n\n'
        f'[agent]\nbackend = "echo"\necho_delay_ms = {ECHO_DELAY_MS}\n'
    )
    config.chmod(0o600)
    daemon = Daemon(home, free_port())
    daemon.start()
    return daemon


def squeeze(target: Path) -> None:
    """Quantize the PNG in place with pngquant, if it is installed."""
    pngquant = shutil.which("pngquant")
    if pngquant is not None:
        subprocess.run(
            [pngquant, "--force", "--skip-if-larger", "--strip", "--output", target, target],
            check=False,
        )


def main(target: Path) -> None:
    """Run a gateway, send two messages in the Control UI and wait for both replies."""
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        daemon = start_daemon(Path(scratch) / "home")
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=VIEWPORT, color_scheme="light")
            page.goto(f"http://127.0.0.1:{daemon.port}/control/chat#token={TOKEN}")
            box = page.get_by_placeholder("Message clawgate")
            expect(box).to_be_visible(timeout=45_000)
            for text in CHATS:
                box.fill(text)
                box.press("Enter")
                expect(page.get_by_text(text, exact=True).nth(1)).to_be_visible(timeout=45_000)
            page.wait_for_timeout(1_000)
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target))
        finally:
            browser.close()
            daemon.stop()
    squeeze(target)
    print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/control-ui-chat.png"))
