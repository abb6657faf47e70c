"""The plugin backend: a plugin that registered capability `agent` answers runs over IPC.

The exchange (documented in README, "Agent plugins"):

- daemon → plugin request `agent.run {runId, sessionKey, message, history:[{role, text}]}`;
  its response `{text?, stopReason?, usage?}` ends the run (an error response fails it);
  `text` is used only when no `agent.event` streamed any;
- plugin → daemon request `agent.event {runId, stream:"assistant", data:{delta}}` for each
  piece of text while `agent.run` is open, answered `{accepted: true}`; `{accepted: false}`
  when the run is no longer running (aborted or timed out): the plugin should stop;
- daemon → plugin event `agent.abort {runId}` when the run is aborted or times out.

Deltas keep the order the plugin sent them in: the IPC connection starts one handler task
per request in arrival order, and `on_event` queues the delta before its first await.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ..ipc import IpcError, PluginRegistry, PluginSession
from ..protocol.ipc.frames import INVALID_PARAMS
from .backend import BackendError, BackendItem, BackendRequest, Completion, TextDelta

__all__ = ["AGENT_CAPABILITY", "PluginBackend"]

AGENT_CAPABILITY: Final = "agent"


@dataclass(slots=True)
class _PluginRun:
    """A run a plugin is answering."""

    connection_id: str
    streamed: bool = False
    items: asyncio.Queue[BackendItem | None] = field(default_factory=asyncio.Queue)


class PluginBackend:
    """Forward runs to the most recently registered plugin with capability `agent`."""

    name = "plugin"

    def __init__(self, registry: Callable[[], PluginRegistry | None], timeout_s: float) -> None:
        self._registry = registry
        self._timeout_s = timeout_s
        self._runs: dict[str, _PluginRun] = {}

    def handlers(self) -> dict[str, Any]:
        """Return the plugin-to-daemon methods this backend serves."""
        return {"agent.event": self.on_event}

    async def on_event(self, session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        """Take one streamed event of a run the calling plugin is answering."""
        run_id = params.get("runId")
        if not isinstance(run_id, str):
            raise IpcError(INVALID_PARAMS, "agent.event needs runId (string)")
        data = params.get("data")
        stream = params.get("stream", "assistant")
        if stream != "assistant" or not isinstance(data, dict):
            raise IpcError(INVALID_PARAMS, 'agent.event needs stream "assistant" and data')
        delta = data.get("delta")
        if not isinstance(delta, str):
            raise IpcError(INVALID_PARAMS, "agent.event data needs delta (string)")
        run = self._runs.get(run_id)
        if run is None or run.connection_id != session.connection_id:
            return {"accepted": False}
        run.streamed = True
        run.items.put_nowait(TextDelta(delta))
        return {"accepted": True}

    async def stream(self, request: BackendRequest) -> AsyncIterator[BackendItem]:
        """Call `agent.run` on the plugin and yield what it streams back."""
        registry = self._registry()
        session = registry.for_capability(AGENT_CAPABILITY) if registry is not None else None
        if session is None:
            raise BackendError(
                'no plugin with capability "agent" is connected; start one (see README)'
            )
        run = _PluginRun(session.connection_id)
        self._runs[request.run_id] = run
        call = asyncio.create_task(self._call(session, request, run))
        try:
            while True:
                item = await run.items.get()
                if item is None:
                    break
                yield item
            await call  # raises the plugin's error, if it answered with one
        finally:
            self._runs.pop(request.run_id, None)
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, BackendError):
                    await call
                session.send_event("agent.abort", {"runId": request.run_id})

    async def _call(self, session: PluginSession, request: BackendRequest, run: _PluginRun) -> None:
        params = {
            "runId": request.run_id,
            "sessionKey": request.session_key,
            "message": request.message,
            "history": [{"role": m.role, "text": m.text} for m in request.history],
        }
        try:
            # The run's own timeout bounds it; this one only stops a call that never ends.
            result = await session.request("agent.run", params, self._timeout_s + 5)
        except IpcError as exc:
            run.items.put_nowait(None)
            raise BackendError(f"plugin {session.name} failed the run: {exc.message}") from None
        text = result.get("text")
        if isinstance(text, str) and text and not run.streamed:
            run.items.put_nowait(TextDelta(text))
        stop_reason = result.get("stopReason")
        usage = result.get("usage")
        run.items.put_nowait(
            Completion(
                stop_reason if isinstance(stop_reason, str) else None,
                usage if isinstance(usage, dict) else None,
            )
        )
        run.items.put_nowait(None)
