"""Every shell command in README.md runs against a real gateway in a fresh home.

The commands are taken from the README's ```sh blocks (continuation lines joined, comments
dropped) and run one by one with `sh -c` in README order, with `CLAWGATE_HOME` and `HOME` in a
temporary directory and `clawgate` from this venv first on `PATH`. The harness starts the
gateway with the README's own `clawgate gateway start` before the others and runs its
`clawgate gateway stop` last. A command that cannot run here is listed in `SKIPPED` with the
reason; a README command that is neither run nor listed fails the test, and so does a listed
one the README no longer has.

What the harness changes, and nothing else: `127.0.0.1:18789` becomes the gateway's free port
(another gateway may hold 18789), `[--flag]` synopses are run with the flag, and `ID` in a
`clawgate cron` command becomes the id of the README's first cron job.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.test_cli import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
START = "clawgate gateway start"
STOP = "clawgate gateway stop"
HOOK_TOKEN = "readme-hook-token-5c1d0e9f2a7b"

_NEEDS_HUB = "needs a running hub and its daemon key (tests/e2e/test_hub_cli.py runs these)"
_NEEDS_TELEGRAM = (
    "needs a Telegram bot token and a reachable Bot API (tests/e2e/test_channels_cli.py)"
)
_NEEDS_NODE = (
    "needs a paired node host (node.invoke runs in tests/e2e/test_node_host.py, through the SDK)"
)
_NEEDS_APPROVAL = (
    "needs a pending exec approval from a node (tests/integration/test_exec_approvals.py)"
)

#: README commands this test does not run, each with why.
SKIPPED: dict[str, str] = {
    "make run": "the gateway in the foreground until Ctrl-C; `gateway start` here runs the same",
    "make test": "the whole test suite, this test included",
    "clawgate gateway install": "changes the user's boot configuration (systemd/launchd)",
    "clawgate gateway uninstall": "changes the user's boot configuration (systemd/launchd)",
    "clawgate gateway run": "the gateway in the foreground until Ctrl-C",
    "clawgate integrations apply desired.toml": (
        "needs the manifest desired.toml names and a plugin that hosts it "
        "(tests/e2e/test_integrations_cli.py)"
    ),
    "clawgate hub run": "the hub in the foreground until Ctrl-C (tests/e2e/test_hub_cli.py)",
    "clawgate hub keys create --label laptop": _NEEDS_HUB,
    "clawgate hub daemons": _NEEDS_HUB,
    "clawgate hub desired set DAEMON_ID desired.toml": _NEEDS_HUB,
    "clawgate hub command get COMMAND_ID --wait 30": _NEEDS_HUB,
    "clawgate hub command list DAEMON_ID": _NEEDS_HUB,
    "clawgate hub command DAEMON_ID github.sync --target integration=github --wait 30": _NEEDS_HUB,
    "clawgate hub reports DAEMON_ID": _NEEDS_HUB,
    "clawgate config set cloud.url ws://127.0.0.1:18800/v1/daemon": _NEEDS_HUB,
    "clawgate config set auth.api_key cgk_...": _NEEDS_HUB,
    (
        "clawgate cron add --at 2026-12-24T18:00 --tz America/New_York "
        '-m "Wish everyone a merry Christmas" --delete-after-run'
    ): "a fixed calendar date, refused once it has passed (tests check no wall clock)",
    "clawgate ui fetch-openclaw": "downloads OpenClaw from npm (tests/e2e/test_ui_cli.py)",
    "clawgate pairing approve telegram K7Q2ZP4M": _NEEDS_TELEGRAM,
    "clawgate pairing reject telegram K7Q2ZP4M": _NEEDS_TELEGRAM,
    "clawgate channels logout telegram": _NEEDS_TELEGRAM,
    "clawgate channels login telegram": _NEEDS_TELEGRAM,
    "clawgate channels login telegram --token-stdin": _NEEDS_TELEGRAM,
    'clawgate message send --channel telegram --to 123456789 "Dinner at 8?"': _NEEDS_TELEGRAM,
    "clawgate nodes invoke laptop device.info": _NEEDS_NODE,
    'clawgate nodes invoke laptop system.which --params \'{"bins": ["git"]}\'': _NEEDS_NODE,
    "clawgate nodes rename 6ca587b3 laptop": _NEEDS_NODE,
    "clawgate approvals allow ID": _NEEDS_APPROVAL,
    "clawgate approvals allow ID --always": _NEEDS_APPROVAL,
    "clawgate approvals deny ID": _NEEDS_APPROVAL,
    "clawgate devices revoke DEVICE": (
        "needs a paired remote device (tests/e2e/test_devices_cli.py)"
    ),
    "clawgate call health --url wss://agent-host:18789/ --tls-fingerprint AB:CD:...": (
        "a remote host with TLS (tests/e2e/test_tls_cli.py)"
    ),
}

#: Commands that answer with another exit code on a fresh home, and why that is right.
EXIT_CODES: dict[str, int] = {
    # No pairing request is pending in a fresh home: refused, exit 1.
    "clawgate devices approve --latest": 1,
}

_FENCE = re.compile(r"^(?P<indent> *)```sh\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
_COMMENT = re.compile(r"(^|\s+)#\s.*$")


def readme_commands(text: str) -> list[str]:
    """Return the commands of the README's ```sh blocks, continuations joined."""
    commands = []
    for block in _FENCE.finditer(text):
        pending = ""
        for raw in block.group("body").splitlines():
            line = raw[len(block.group("indent")) :].rstrip()
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = _COMMENT.sub("", pending + line.strip()).strip()
            pending = ""
            if command:
                commands.append(command)
    return commands


@dataclass
class Harness:
    """A fresh home, a free port, and what earlier commands left behind."""

    root: Path
    port: int = field(default_factory=free_port)
    cron_id: str | None = None

    @property
    def home(self) -> Path:
        return self.root / "clawgate"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWGATE_")}
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            CLAWGATE_HOME=str(self.home),
            HOME=str(self.root / "user"),
            PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            BROWSER="true",  # `dashboard --open` runs this instead of opening a browser
            HOOK_TOKEN=HOOK_TOKEN,
        )
        return env

    def prepare(self) -> None:
        self.home.mkdir(mode=0o700, parents=True)
        (self.root / "user" / ".clawgate").mkdir(parents=True)
        config = self.home / "config.toml"
        config.write_text(
            f'[gateway]\nport = {self.port}\n\n[hooks]\nenabled = true\ntoken = "{HOOK_TOKEN}"\n'
        )
        config.chmod(0o600)

    def adapt(self, command: str) -> str:
        command = command.replace("127.0.0.1:18789", f"127.0.0.1:{self.port}")
        command = re.sub(r"\[(--[a-z-]+)\]", r"\1", command)
        if command.startswith("clawgate cron ") and re.search(r"\bID\b", command):
            command = re.sub(r"\bID\b", self.first_cron_job(), command)
        return command

    def first_cron_job(self) -> str:
        if self.cron_id is None:
            listing = json.loads(self.run("clawgate cron list --all --json").stdout)
            jobs = listing["jobs"] if isinstance(listing, dict) else listing
            self.cron_id = str(jobs[0]["id"])
        return self.cron_id

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        # Files, not pipes: `gateway start` leaves a daemon behind that must not hold them.
        with (self.root / "out").open("w+") as out:
            result = subprocess.run(
                ["sh", "-c", command],
                env=self.env(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=60,
            )
            out.seek(0)
            result.stdout = out.read()
        return result


def _in_run_order(commands: list[str]) -> list[str]:
    """Return the commands to run: start first, stop last, skipped ones left out."""
    ordered = [c for c in commands if c not in SKIPPED]
    ordered.remove(START)
    ordered.remove(STOP)
    return [START, *ordered, STOP]


def test_every_readme_command_is_run_or_skipped_with_a_reason() -> None:
    commands = readme_commands(README.read_text())
    assert START in commands and STOP in commands
    assert sorted(set(SKIPPED) - set(commands)) == []
    assert sorted(set(EXIT_CODES) - set(commands)) == []


# About 50 CLI processes in a row: ~1 min on a quiet machine, several under load.
@pytest.mark.timeout(600)
def test_readme_commands_run_against_a_real_gateway(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.prepare()
    failures = []
    try:
        for command in _in_run_order(readme_commands(README.read_text())):
            result = harness.run(harness.adapt(command))
            if result.returncode != EXIT_CODES.get(command, 0):
                failures.append(f"{command!r} exited {result.returncode}:\n{result.stdout}")
    finally:
        harness.run(STOP)
    assert failures == [], "\n\n".join(failures)
