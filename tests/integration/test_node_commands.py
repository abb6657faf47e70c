"""The node host's commands run real programs: local refusal, truncation, timeouts, env."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from clawgate.node import CommandError, NodeCommands, NodeConfig


def commands(**exec_section: Any) -> NodeCommands:
    config = NodeConfig.model_validate({"exec": {"mode": "full", **exec_section}})
    return NodeCommands(config, {"PATH": "/usr/bin:/bin", "SECRET": "x"}, 0.0)


async def test_run_returns_exit_code_and_output() -> None:
    result = await commands().system_run(
        {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]}
    )
    assert result["exitCode"] == 3 and result["success"] is False
    assert result["stdout"] == "out\n" and result["stderr"] == "err\n"
    assert result["truncated"] is False and result["timedOut"] is False


async def test_run_uses_no_shell_unless_argv_asks_for_one() -> None:
    result = await commands().system_run({"command": ["echo", "$HOME;", "|", "cat"]})
    assert result["stdout"] == "$HOME; | cat\n"


async def test_node_refuses_argv_outside_its_own_allowlist() -> None:
    node = commands(mode="allowlist", allow=[["echo", "**"]])
    assert (await node.system_run({"command": ["echo", "ok"]}))["stdout"] == "ok\n"
    with pytest.raises(CommandError) as caught:
        await node.system_run({"command": ["rm", "-rf", "/tmp/x"]})
    assert caught.value.code == "SYSTEM_RUN_DENIED"


async def test_default_node_policy_refuses_everything() -> None:
    node = NodeCommands(NodeConfig(), {"PATH": "/usr/bin:/bin"}, 0.0)
    with pytest.raises(CommandError):
        await node.system_run({"command": ["true"]})


async def test_output_over_the_cap_is_truncated() -> None:
    node = commands(output_max_bytes=1024)
    result = await node.system_run({"command": ["head", "-c", "100000", "/dev/zero"]})
    assert len(result["stdout"]) == 1024 and result["truncated"] is True
    assert result["exitCode"] == 0


async def test_program_that_never_ends_is_killed_at_its_timeout() -> None:
    result = await commands().system_run({"command": ["sleep", "600"], "timeoutMs": 200})
    assert result["timedOut"] is True and result["exitCode"] is None


async def test_cancel_kills_the_program() -> None:
    node = commands()
    task = asyncio.create_task(
        node.system_run({"command": [sys.executable, "-c", "import time; time.sleep(600)"]})
    )
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_environment_is_limited_to_the_allow_list() -> None:
    result = await commands().system_run(
        {"command": ["env"], "env": {"LANG": "C", "LD_PRELOAD": "/evil.so"}}
    )
    names = {line.split("=")[0] for line in result["stdout"].splitlines()}
    assert names == {"PATH", "LANG"}


async def test_which_finds_programs_on_path() -> None:
    result = await commands().system_which({"bins": ["sh", "no-such-program-here"]})
    assert list(result["bins"]) == ["sh"]


async def test_location_without_config_is_a_clear_error() -> None:
    with pytest.raises(CommandError) as caught:
        await commands().location_get({})
    assert caught.value.code == "LOCATION_UNAVAILABLE"


async def test_location_from_config() -> None:
    config = NodeConfig.model_validate({"location": {"latitude": 48.1, "longitude": 11.6}})
    result = await NodeCommands(config, {}, 0.0).location_get({})
    assert result["lat"] == 48.1 and result["lon"] == 11.6


async def test_canvas_is_unavailable_until_the_canvas_host_lands() -> None:
    with pytest.raises(CommandError) as caught:
        await commands().canvas({})
    assert caught.value.code == "UNAVAILABLE"


async def test_device_info_names_the_machine() -> None:
    info = await commands().device_info({})
    assert set(info) == {"hostname", "platform", "osVersion", "arch", "version"}
