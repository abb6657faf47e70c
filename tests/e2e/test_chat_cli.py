"""`clawgate chat`, `agent` and `dashboard` as a user runs them, against a real gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import CLAWGATE, Daemon, env_for, run_cli, start_daemon, stop_daemon

TOKEN = "chat-cli-token-0123456789-abcdef"
WORDS = "one two three four five six"


def make_home(tmp_path: Path, echo_delay_ms: int, port: int = 18789) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = {port}\n\n[gateway.auth]\ntoken = "{TOKEN}"\n\n'
        f"[agent]\necho_delay_ms = {echo_delay_ms}\n"
    )
    config.chmod(0o600)
    return home


@pytest.fixture
def slow_daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(make_home(tmp_path, echo_delay_ms=300))
    yield running
    if running.process.poll() is None:
        stop_daemon(running)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(make_home(tmp_path, echo_delay_ms=0))
    yield running
    if running.process.poll() is None:
        stop_daemon(running)


def chat_process(daemon: Daemon, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLAWGATE, "chat", *args, "--url", daemon.url],
        env=env_for(daemon.home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_chat_streams_the_reply_in_pieces_before_the_run_ends(slow_daemon: Daemon) -> None:
    process = chat_process(slow_daemon, WORDS)
    assert process.stdout is not None
    fd = process.stdout.fileno()
    first = os.read(fd, 4096).decode()
    still_running = process.poll() is None
    chunks = [first]
    while chunk := os.read(fd, 4096):
        chunks.append(chunk.decode())
    assert process.wait(timeout=30) == 0
    assert still_running
    assert first and WORDS.startswith(first) and first != WORDS
    assert len(chunks) >= 2
    assert "".join(chunks) == WORDS + "\n"


def test_chat_without_a_message_answers_each_stdin_line(daemon: Daemon) -> None:
    process = chat_process(daemon, "--session", "stdin-test")
    out, err = process.communicate(b"hello there\nsecond line\n", timeout=30)
    assert process.returncode == 0, err.decode()
    assert out.decode() == "hello there\nsecond line\n"


def test_chat_json_prints_the_run_events_as_json_lines(daemon: Daemon) -> None:
    process = chat_process(daemon, "--json", "hello json")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert {line["event"] for line in lines} == {"chat", "agent"}
    assert len({line["payload"]["runId"] for line in lines}) == 1
    final = lines[-1]
    assert final["event"] == "chat" and final["payload"]["state"] == "final"
    assert final["payload"]["message"]["content"][0]["text"] == "hello json"


def test_ctrl_c_aborts_the_run_and_keeps_the_session(slow_daemon: Daemon) -> None:
    process = chat_process(slow_daemon, "--session", "abort-test", WORDS)
    assert process.stdout is not None
    os.read(process.stdout.fileno(), 4096)  # the run is streaming
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "(aborted)" in err.decode()
    again = run_cli(
        slow_daemon.home, "chat", "--session", "abort-test", "one", "--url", slow_daemon.url
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == "one\n"


def test_agent_wait_prints_the_final_text(daemon: Daemon) -> None:
    done = run_cli(daemon.home, "agent", "the final words", "--wait", "--url", daemon.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the final words\n"


def test_agent_wait_json_ends_with_the_outcome(daemon: Daemon) -> None:
    done = run_cli(daemon.home, "agent", "as json", "--wait", "--json", "--url", daemon.url)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1]["event"] == "final"
    assert lines[-1]["payload"]["result"]["payloads"][0]["text"] == "as json"
    assert any(line["event"] == "chat" for line in lines[:-1])


def test_dashboard_prints_the_webchat_link_with_the_token(tmp_path: Path) -> None:
    home = make_home(tmp_path, echo_delay_ms=0, port=18999)
    done = run_cli(home, "dashboard")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"http://127.0.0.1:18999/#token={TOKEN}\n"


def test_dashboard_open_hands_the_link_to_the_browser(tmp_path: Path) -> None:
    home = make_home(tmp_path, echo_delay_ms=0, port=18999)
    opened = tmp_path / "opened"
    browser = f"{sys.executable} -c \"import sys; open('{opened}', 'w').write(sys.argv[1])\" %s"
    done = run_cli(home, "dashboard", "--open", BROWSER=browser)
    assert done.returncode == 0, done.stderr
    assert opened.read_text() == f"http://127.0.0.1:18999/#token={TOKEN}"
