"""The channel CLI with IRC: a real daemon on a real ngircd, a person's raw client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.test_channels_cli import cli
from tests.e2e.test_cli import free_port, start_daemon, stop_daemon
from tests.integration.channels.ircd import Human, Ngircd

BOT = "clibot"
ALICE = "clialice"


def write_config(home: Path, server: Ngircd) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    config = home / "config.toml"
    config.write_text(
        f"[gateway]\nport = {free_port()}\n"
        '[gateway.auth]\ntoken = "cli-irc-token-0123456789abcdef"\n'
        "[agent]\necho_delay_ms = 0\n"
        f'[channels.irc]\nserver = "localhost"\nport = {server.tls_port}\n'
        f'tls_ca_file = "{server.ca_file}"\nnick = "{BOT}"\ndebounce_ms = 0\n'
        "flood_interval_ms = 50\n"
    )
    config.chmod(0o600)


async def test_pair_over_irc_and_message_from_the_cli(tmp_path: Path) -> None:
    server = Ngircd(tmp_path / "ngircd")
    server.start()
    home = tmp_path / "home"
    write_config(home, server)
    daemon = await asyncio.to_thread(start_daemon, home)
    human = Human(ALICE)
    try:
        await human.connect(server.port)

        async def code_arrived() -> bool:
            human.say(BOT, "hello")  # again until the bot is on the server
            try:
                await human.wait(lambda: human.messages(BOT, "Pairing code:"), timeout=1)
            except TimeoutError:
                return False
            return True

        async with asyncio.timeout(60):
            while not await code_arrived():
                pass
        line = human.messages(BOT, "Pairing code:")[0].text
        code = line.split("Pairing code: ")[1].split()[0]
        status, out, err = await cli(home, "pairing", "approve", "irc", code, "--url", daemon.url)
        assert status == 0 and f"approved sender {ALICE}" in out, err
        status, out, err = await cli(
            home, "message", "send", "--channel", "irc", "--to", ALICE, "dinner at 8?",
            "--url", daemon.url,
        )  # fmt: skip
        assert status == 0, err
        await human.wait(lambda: human.messages(BOT, "dinner at 8?"))
        status, out, err = await cli(home, "channels", "status", "--json", "--url", daemon.url)
        entries = {e["channel"]: e for e in json.loads(out)["channels"]}
        assert entries["irc"]["connected"] and entries["irc"]["lastOutboundAt"] is not None
    finally:
        await human.close()
        await asyncio.to_thread(stop_daemon, daemon)
        server.stop()


async def test_login_stores_the_irc_password_from_stdin(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text('[channels.irc]\nserver = "irc.example.org"\n')
    (home / "config.toml").chmod(0o600)
    status, _, err = await cli(home, "channels", "login", "irc", "--token-stdin", stdin="pw-1\n")
    assert status == 0, err
    assert 'password = "pw-1"' in (home / "config.toml").read_text()
    status, out, _ = await cli(home, "config", "show")
    assert status == 0 and "pw-1" not in out and "__OPENCLAW_REDACTED__" in out
