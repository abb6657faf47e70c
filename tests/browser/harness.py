"""A real daemon and Debian's headless Chromium, for the WebChat browser test and screenshot."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from playwright.sync_api import Browser, Playwright

from tests.e2e.test_cli import CLAWGATE, env_for, free_port

CHROMIUM: Final = Path("/usr/bin/chromium")
# Chromium as Debian ships it, with nothing phoning home; never `playwright install`.
LAUNCH_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN: Final = "browser-test-token-7f3a9c1e5b"
# Slow enough that several throttled deltas (>= 150 ms apart) reach the page per reply.
ECHO_DELAY_MS: Final = 50


def launch_chromium(playwright: Playwright) -> Browser:
    """Start Debian's Chromium headless, or fail saying how to install it."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


@dataclass
class Daemon:
    """A `clawgate gateway run` subprocess with its own home."""

    home: Path
    port: int
    process: subprocess.Popen[str] | None = None

    @property
    def http_url(self) -> str:
        """The WebChat URL without the token."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def link(self) -> str:
        """The WebChat URL with the token fragment, as `gateway run` prints it."""
        return f"{self.http_url}#token={TOKEN}"

    def start(self) -> None:
        """Start the gateway on this home and port and wait until it answers."""
        self.process = subprocess.Popen(
            [*CLAWGATE, "gateway", "run", "--port", str(self.port)],
            env=env_for(self.home, CLAWGATE_GATEWAY_TOKEN=TOKEN),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 20
        banner = ""
        while "auth:" not in banner and time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"gateway exited early:\n{banner}")
            banner += line

    def stop(self) -> None:
        """SIGTERM the gateway and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.communicate(timeout=15)
        self.process = None


def new_daemon(home: Path) -> Daemon:
    """Prepare a private home whose echo agent streams visibly, and start a gateway on it."""
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(f'[agent]\nbackend = "echo"\necho_delay_ms = {ECHO_DELAY_MS}\n')
    config.chmod(0o600)
    daemon = Daemon(home, free_port())
    daemon.start()
    return daemon
