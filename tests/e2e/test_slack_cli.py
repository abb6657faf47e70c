"""`clawgate channels|pairing|message` with a Slack account: a gateway process, the stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.test_channels_cli import cli
from tests.e2e.test_cli import free_port, start_daemon, stop_daemon
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.integration.channels.harness import wait_for

ALICE, DM = "U0ALICE", "D0ALICE"


def write_config(home: Path, fake: FakeSlack, port: int) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "slack-bot.token").write_text(BOT_TOKEN)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n[gateway.auth]\ntoken = "cli-slack-token-0123456789"\n'
        f'[agent]\necho_delay_ms = 0\n[channels.slack]\nbot_token_file = "slack-bot.token"\n'
        f'app_token = "{APP_TOKEN}"\napi_base = "{fake.api_base}"\ndebounce_ms = 0\n'
    )
    config.chmod(0o600)


async def test_status_shows_the_slack_account_and_a_stranger_is_paired_from_the_cli(
    tmp_path: Path,
) -> None:
    fake = FakeSlack()
    await fake.start()
    home = tmp_path / "home"
    write_config(home, fake, free_port())
    daemon = await asyncio.to_thread(start_daemon, home)
    try:
        await fake.wait_connections(1, timeout=20)
        code, out, err = await cli(home, "channels", "status", "--url", daemon.url)
        assert code == 0, err
        [row] = [line for line in out.splitlines() if "slack" in line]
        assert "default" in row and "connected" in row
        await fake.user_says("hello bot", user=ALICE, channel=DM)
        [sent] = await fake.wait_sent(channel=DM, timeout=20)
        pairing_code = sent.text.split("Pairing code: ")[1].split()[0]
        code, out, err = await cli(
            home, "pairing", "approve", "slack", pairing_code, "--url", daemon.url
        )
        assert code == 0 and f"approved sender {ALICE}" in out, err
        await fake.user_says("now answer me", user=ALICE, channel=DM)
        await wait_for(lambda: any("now answer me" in p.text for p in fake.posted), timeout=20)
        code, out, err = await cli(
            home, "message", "send", "--channel", "slack", "--to", DM, "ping",
            "--url", daemon.url,
        )  # fmt: skip
        assert code == 0, err
        assert [p.text for p in fake.posted if p.channel == DM][-1] == "ping"
        code, out, err = await cli(home, "config", "show")
        assert code == 0 and APP_TOKEN not in out and BOT_TOKEN not in out
    finally:
        await asyncio.to_thread(stop_daemon, daemon)
        await fake.stop()
    log = (home / "logs" / "gateway.log").read_text() if (home / "logs").exists() else ""
    assert APP_TOKEN not in log and BOT_TOKEN not in log and "now answer me" not in log
