"""`clawgate channels|pairing|message` against a real gateway process and the Bot API stand-in."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.e2e.test_cli import env_for, free_port, start_daemon, stop_daemon
from tests.fakes.telegram_api import BOT_TOKEN, FakeTelegram

CLAWGATE = [sys.executable, "-m", "clawgate.cli"]


async def cli(home: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop the stand-in serves on."""
    process = await asyncio.create_subprocess_exec(
        *CLAWGATE,
        *args,
        env=env_for(home),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin is not None else None), 30
    )
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(home: Path, fake: FakeTelegram, port: int) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "tg.token").write_text(BOT_TOKEN)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n[gateway.auth]\ntoken = "cli-channels-token-0123456789"\n'
        f'[agent]\necho_delay_ms = 0\n[channels.telegram]\ntoken_file = "tg.token"\n'
        f'api_base = "{fake.api_base}"\npoll_timeout_s = 1\ndebounce_ms = 0\n'
    )
    config.chmod(0o600)


async def test_pair_a_stranger_and_message_them_from_the_cli(tmp_path: Path) -> None:
    fake = FakeTelegram()
    await fake.start()
    home = tmp_path / "home"
    write_config(home, fake, free_port())
    daemon = await asyncio.to_thread(start_daemon, home)
    try:
        code, out, err = await cli(home, "channels", "list", "--json")
        assert code == 0, err
        [row] = json.loads(out)
        assert row["credential"] == "set" and BOT_TOKEN not in out
        fake.user_says("hello bot", user_id=4242)
        [sent] = await fake.wait_sent(timeout=20)
        pairing_code = sent.text.split("Pairing code: ")[1].split()[0]
        code, out, err = await cli(home, "pairing", "list", "--json", "--url", daemon.url)
        assert code == 0, err
        [entry] = json.loads(out)
        assert {k: entry[k] for k in ("channel", "account", "sender", "code")} == {
            "channel": "telegram",
            "account": "default",
            "sender": "4242",
            "code": pairing_code,
        }
        code, out, err = await cli(
            home, "pairing", "approve", "telegram", pairing_code, "--url", daemon.url
        )
        assert code == 0 and "approved sender 4242" in out, err
        code, out, err = await cli(
            home, "message", "send", "--channel", "telegram", "--to", "4242", "ping",
            "--url", daemon.url,
        )  # fmt: skip
        assert code == 0, err
        assert [s.text for s in fake.messages_to(4242)][-1] == "ping"
        code, out, err = await cli(home, "channels", "status", "--json", "--url", daemon.url)
        entries = {e["channel"]: e for e in json.loads(out)["channels"]}
        assert entries["telegram"]["lastOutboundAt"] is not None
        code, out, err = await cli(
            home, "pairing", "approve", "telegram", "NOPE1234", "--url", daemon.url
        )
        assert code == 1 and "PAIRING_CODE_NOT_FOUND" in err
    finally:
        await asyncio.to_thread(stop_daemon, daemon)
        await fake.stop()
    log = (home / "logs" / "gateway.log").read_text() if (home / "logs").exists() else ""
    assert BOT_TOKEN.split(":")[1] not in log


async def test_login_stores_a_token_from_stdin_in_the_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    code, out, err = await cli(
        home, "channels", "login", "telegram", "--token-stdin", stdin="1:abc\n"
    )
    assert code == 0, err
    text = (home / "config.toml").read_text()
    assert 'token = "1:abc"' in text and oct((home / "config.toml").stat().st_mode)[-3:] == "600"
    code, out, err = await cli(home, "config", "show")
    assert code == 0 and "1:abc" not in out and "__OPENCLAW_REDACTED__" in out


async def test_login_stores_a_matrix_access_token_from_stdin(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    code, _, err = await cli(home, "channels", "login", "matrix", "--token-stdin", stdin="syt_x\n")
    assert code == 0, err
    assert 'access_token = "syt_x"' in (home / "config.toml").read_text()
    code, out, err = await cli(home, "config", "show")
    assert code == 0 and "syt_x" not in out and "__OPENCLAW_REDACTED__" in out


async def test_login_of_a_channel_without_a_token_says_what_to_do_instead(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    code, _, err = await cli(home, "channels", "login", "signal", "--token-stdin", stdin="x\n")
    assert code == 2 and "signal takes no token: signal-cli holds" in err
    assert not (home / "config.toml").exists()


async def test_webchat_is_listed_and_sent_to_like_any_channel_from_the_cli(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    daemon = await asyncio.to_thread(start_daemon, home)
    try:
        code, out, err = await cli(
            home, "message", "send", "--channel", "webchat", "--to", "main", "hello page",
            "--url", daemon.url,
        )  # fmt: skip
        assert code == 0, err
        code, out, err = await cli(home, "channels", "status", "--json", "--url", daemon.url)
        assert code == 0, err
        [entry] = json.loads(out)["channels"]
        assert (entry["channel"], entry["accountId"], entry["state"]) == (
            "webchat",
            "default",
            "connected",
        )
        assert entry["lastOutboundAt"] is not None
    finally:
        await asyncio.to_thread(stop_daemon, daemon)
