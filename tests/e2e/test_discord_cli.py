"""`clawgate channels|pairing|message` with a Discord account: a gateway process, the stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.test_channels_cli import cli
from tests.e2e.test_cli import free_port, start_daemon, stop_daemon
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord
from tests.integration.channels.harness import wait_for

ALICE = "1500000000000000001"


def write_config(home: Path, fake: FakeDiscord, port: int) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "discord-bot.token").write_text(BOT_TOKEN)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n[gateway.auth]\ntoken = "cli-discord-token-0123456789"\n'
        f'[agent]\necho_delay_ms = 0\n[channels.discord]\ntoken_file = "discord-bot.token"\n'
        f'api_base = "{fake.api_base}"\ndebounce_ms = 0\n'
    )
    config.chmod(0o600)


async def test_status_shows_the_discord_account_and_a_stranger_is_paired_from_the_cli(
    tmp_path: Path,
) -> None:
    fake = FakeDiscord()
    await fake.start()
    home = tmp_path / "home"
    write_config(home, fake, free_port())
    daemon = await asyncio.to_thread(start_daemon, home)
    dm = fake.dm_channel(ALICE)
    try:
        await fake.wait_ready(1, timeout=20)
        code, out, err = await cli(home, "channels", "status", "--url", daemon.url)
        assert code == 0, err
        [row] = [line for line in out.splitlines() if "discord" in line]
        assert "default" in row and "connected" in row
        await fake.user_says("hello bot", user=ALICE)
        [sent] = await fake.wait_posted(timeout=20)
        pairing_code = sent.content.split("Pairing code: ")[1].split()[0]
        code, out, err = await cli(
            home, "pairing", "approve", "discord", pairing_code, "--url", daemon.url
        )
        assert code == 0 and f"approved sender {ALICE}" in out, err
        await fake.user_says("now answer me", user=ALICE)
        await wait_for(lambda: any("now answer me" in p.content for p in fake.posted), timeout=20)
        code, out, err = await cli(
            home, "message", "send", "--channel", "discord", "--to", dm, "ping",
            "--url", daemon.url,
        )  # fmt: skip
        assert code == 0, err
        assert [p.content for p in fake.posted if p.channel_id == dm][-1] == "ping"
        code, out, err = await cli(home, "config", "show")
        assert code == 0 and BOT_TOKEN not in out
    finally:
        await asyncio.to_thread(stop_daemon, daemon)
        await fake.stop()
    log = (home / "logs" / "gateway.log").read_text() if (home / "logs").exists() else ""
    assert BOT_TOKEN not in log and "now answer me" not in log
