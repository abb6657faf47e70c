"""An agent plugin on the clawgate plugin SDK: it answers runs by echoing, word by word.

The daemon calls `agent.run {runId, sessionKey, message, history}`; the plugin streams each
word back with `agent.event` and ends the run by answering `agent.run`. When the daemon
sends `agent.abort {runId}`, or answers an event `{accepted: false}`, the plugin stops.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final

from clawgate.plugin import Plugin, PluginError

__all__ = ["build_plugin"]

_WORD: Final = re.compile(r"\s*\S+")


def build_plugin(delay_s: float = 0.02, prefix: str = "echo: ") -> Plugin:
    """Return the echo-agent plugin; each word follows the previous after `delay_s`."""
    plugin = Plugin("echo-agent", version="1.0.0", capabilities=["agent"])
    aborted: set[str] = set()

    @plugin.on_event("agent.abort")
    async def abort(payload: dict[str, Any]) -> None:
        aborted.add(str(payload.get("runId")))

    @plugin.handler("agent.run")
    async def run(params: dict[str, Any]) -> dict[str, Any]:
        run_id = params.get("runId")
        message = params.get("message")
        if not isinstance(run_id, str) or not isinstance(message, str):
            raise PluginError("INVALID_PARAMS", "agent.run needs runId and message")
        turns = len(params.get("history") or []) // 2 + 1
        for index, piece in enumerate(_WORD.findall(prefix + message)):
            if index:
                await asyncio.sleep(delay_s)
            if run_id in aborted:
                break
            event = {"runId": run_id, "stream": "assistant", "data": {"delta": piece}}
            answer = await plugin.call("agent.event", event)
            if not answer.get("accepted"):
                break  # the run was aborted or timed out
        aborted.discard(run_id)
        return {"stopReason": "stop", "usage": {"turns": turns}}

    return plugin
