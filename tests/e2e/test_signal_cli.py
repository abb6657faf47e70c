"""`clawgate channels|pairing|message` with a Signal account: a gateway process, the stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.test_channels_cli import cli
from tests.e2e.test_cli import free_port, start_daemon, stop_daemon
from tests.fakes.signal_cli import ACCOUNT, FakeSignalCli
from tests.integration.channels.harness import wait_for

ALICE = "+15550002222"


def write_config(home: Path, fake: FakeSignalCli, port: int) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n[gateway.auth]\ntoken = "cli-signal-token-0123456789"\n'
        f'[agent]\necho_delay_ms = 0\n[channels.signal]\naccount = "{ACCOUNT}"\n'
        f'http_url = "{fake.http_url}"\ndebounce_ms = 0\n'
    )
    config.chmod(0o600)


async def test_status_shows_the_signal_account_and_a_stranger_is_paired_from_the_cli(
    tmp_path: Path,
) -> None:
    fake = FakeSignalCli()
    await fake.start()
    home = tmp_path / "home"
    write_config(home, fake, free_port())
    daemon = await asyncio.to_thread(start_daemon, home)
    try:
        await fake.wait_streams(1, timeout=20)
        code, out, err = await cli(home, "channels", "status", "--url", daemon.url)
        assert code == 0, err
        [row] = [line for line in out.splitlines() if "signal" in line]
        assert "default" in row and "connected" in row
        await fake.user_says("hello bot", number=ALICE)
        [sent] = await fake.wait_sent(chat=ALICE, timeout=20)
        pairing_code = sent.message.split("Pairing code: ")[1].split()[0]
        code, out, err = await cli(
            home, "pairing", "approve", "signal", pairing_code, "--url", daemon.url
        )
        assert code == 0 and f"approved sender {ALICE}" in out, err
        await fake.user_says("now answer me", number=ALICE)
        await wait_for(lambda: any("now answer me" in s.message for s in fake.sent), timeout=20)
        code, out, err = await cli(
            home, "message", "send", "--channel", "signal", "--to", ALICE, "ping",
            "--url", daemon.url,
        )  # fmt: skip
        assert code == 0, err
        assert [s.message for s in fake.sent if s.chat == ALICE][-1] == "ping"
    finally:
        await asyncio.to_thread(stop_daemon, daemon)
        await fake.stop()
    log = (home / "logs" / "gateway.log").read_text() if (home / "logs").exists() else ""
    assert "now answer me" not in log and "hello bot" not in log
