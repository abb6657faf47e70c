"""The gateway's channels: WebChat as one channel, and the channel layer when one is configured.

WebChat is the built-in `webchat` channel. Its inbound is `chat.send` (the page's operators
are already authenticated by the gateway, so no channel access policy applies) and its
outbound is the `chat` event stream: `send` with `channel: "webchat"` and a session key as
`to` appends the text to that session and emits a `chat` final, so the page shows it.

Platform channels (Telegram, ...) run in a `ChannelRuntime`, imported only when one is
configured: a gateway without channels loads no channel code and no SDK. Their turns run
through the same `AgentService` as WebChat's, so their `agent` and `chat` events reach WS
operators exactly like WebChat's, and their sessions appear in `sessions.list`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ..agents.run import RunStatus
from ..protocol.chat_events import chat_terminal
from ..store import StateStore
from .agent_service import AgentService
from .broadcaster import Broadcaster
from .http_guard import HttpGuard

if TYPE_CHECKING:
    from ..channels.pipeline import TurnOutcome
    from ..channels.runtime import ChannelRuntime, SendRequest
    from ..channels.settings import ChannelSettings

__all__ = ["WEBCHAT", "WEBHOOK_PREFIX", "ChannelService", "ChannelTurns"]

logger = logging.getLogger(__name__)

WEBCHAT: Final = "webchat"
#: Platform webhooks are served under this path (the rest is random, new at every start).
WEBHOOK_PREFIX: Final = "/channels/"


class ChannelTurns:
    """Run channel turns through the gateway's agent service (the channel layer's TurnRunner)."""

    def __init__(self, agents: AgentService) -> None:
        self._agents = agents

    async def run_turn(self, session_key: str, text: str, run_id: str) -> TurnOutcome:
        """Append the message to the session, run the agent, and wait for its answer."""
        from ..channels.pipeline import TurnOutcome

        agents = self._agents

        async def session() -> Any:
            return await agents.sessions.ensure(session_key)

        run, _ = await agents.run_once(run_id, session, text, agents.settings.timeout_s)
        await run.done.wait()
        ok = run.status is RunStatus.OK
        return TurnOutcome(ok, run.text, None if ok else run.summary())

    async def note(self, session_key: str, text: str, label: str) -> None:
        """Append a system note to the session (a failed delivery, say)."""
        record = await self._agents.sessions.ensure(session_key)
        await self._agents.sessions.append(record, "system", text, label=label)


class ChannelService:
    """Every channel of this gateway, as `send`, `channels.*` and the HTTP side see them."""

    def __init__(
        self,
        *,
        agents: AgentService,
        broadcaster: Broadcaster[Any],
        store: StateStore,
        settings: ChannelSettings | None,
        home: Path,
        clock: Callable[[], int],
        guard: HttpGuard | None = None,
    ) -> None:
        self._agents = agents
        self._guard = guard
        self._broadcaster = broadcaster
        self._clock = clock
        self.required_for_ready = bool(settings and settings.required_for_ready)
        self.runtime: ChannelRuntime | None = None
        if settings is not None and settings.accounts:
            from ..channels.runtime import ChannelRuntime

            self.runtime = ChannelRuntime(
                settings,
                store=store,
                turns=ChannelTurns(agents),
                home=home,
                clock=clock,
                backoff=settings.backoff,
                outbox=settings.outbox,
                agent_name=agents.settings.name,
            )

    async def start(self, spawn: Callable[..., Any]) -> None:
        """Start the configured channel accounts."""
        if self.runtime is not None:
            await self.runtime.start(spawn)

    async def stop(self) -> None:
        """Stop every channel account."""
        if self.runtime is not None:
            await self.runtime.stop()

    def channel_names(self) -> list[str]:
        """Return the configured messaging channels (WebChat is not one of them)."""
        if self.runtime is None:
            return []
        return sorted({account.channel for account in self.runtime.settings.accounts})

    # -- status -------------------------------------------------------------------------

    def webchat_status(self) -> dict[str, Any]:
        """Return WebChat's status entry: served with the gateway's HTTP port."""
        return {
            "channel": WEBCHAT,
            "accountId": "default",
            "enabled": True,
            "running": True,
            "connected": True,
            "state": "connected",
            "lastInboundAt": None,
            "lastOutboundAt": None,
            "lastError": None,
            "reconnects": 0,
        }

    def status(self) -> list[dict[str, Any]]:
        """Return every channel account's status, WebChat first."""
        accounts = self.runtime.status() if self.runtime is not None else []
        return [self.webchat_status(), *accounts]

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Return (ready as far as channels go, state per account) for `/readyz`."""
        states = {f"{e['channel']}/{e['accountId']}": e["state"] for e in self.status()}
        if self.runtime is None or not self.required_for_ready:
            return True, states
        return not self.runtime.not_connected(), states

    def health_channels(self) -> dict[str, dict[str, Any]]:
        """Return HealthSummary's `channels` map: one entry per channel."""
        out: dict[str, dict[str, Any]] = {}
        for entry in self.status():
            current = out.setdefault(
                entry["channel"], {"configured": True, "running": False, "linked": False}
            )
            current["running"] |= entry["running"]
            current["linked"] |= entry["connected"]
            if entry["lastError"] and "lastError" not in current:
                current["lastError"] = entry["lastError"]
        return out

    # -- send -----------------------------------------------------------------------------

    async def send(self, request: SendRequest) -> dict[str, Any]:
        """Deliver an outbound message on WebChat or a platform channel.

        Raises:
            ChannelError: see `ChannelRuntime.send` (unknown channel, delivery failed).
        """
        if request.channel == WEBCHAT:
            return await self._send_webchat(request)
        if self.runtime is None:
            from ..channels.runtime import UnknownChannel

            raise UnknownChannel(
                "no messaging channel is configured; add one under [channels] in config.toml"
                ' (or send with channel "webchat")'
            )
        result = await self.runtime.send(request)
        if request.session_key is not None and request.text:
            await self._append(request.session_key, request.text)
        return result

    async def _send_webchat(self, request: SendRequest) -> dict[str, Any]:
        key = request.to
        stored = await self._append(key, request.text)
        payload = chat_terminal(
            run_id=request.run_id or stored,
            session_key=key,
            seq=1,
            state="final",
            now=self._clock(),
            text=request.text,
        )
        self._broadcaster.broadcast("chat", payload)
        return {"messageId": stored, "channel": WEBCHAT, "chatId": key}

    async def _append(self, session_key: str, text: str) -> str:
        record = await self._agents.sessions.ensure(session_key)
        message = await self._agents.sessions.append(record, "assistant", text, label="send")
        return message.message_id

    # -- HTTP ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve platform webhooks at `/channels/<channel>/<secret path>` (an HttpSurface)."""
        app.router.add_post(f"{WEBHOOK_PREFIX}{{channel}}/{{secret}}", self.webhook)

    async def webhook(self, request: web.Request) -> web.Response:
        """Hand a platform's webhook call to the account that registered its secret path."""
        guard = self._guard
        locked = guard.lockout(request) if guard is not None else None
        if locked is not None:
            retry_s = str(max(1, -(-locked.retry_after_ms // 1000)))
            return web.Response(status=429, text="locked out\n", headers={"Retry-After": retry_s})
        path = f"{request.match_info['channel']}/{request.match_info['secret']}"
        handler = self.runtime.webhooks.get(path) if self.runtime is not None else None
        if handler is None:
            # The path is a secret: a wrong one is a failed guess like a wrong token (§5.4).
            await self._failed(request)
            raise web.HTTPNotFound(text="not found\n")
        body = await request.read()
        status = await handler({k.lower(): v for k, v in request.headers.items()}, body)
        if status == 401:
            await self._failed(request)
        return web.Response(status=status, text="ok\n" if status == 200 else "refused\n")

    async def _failed(self, request: web.Request) -> None:
        if self._guard is not None:
            await self._guard.delay(self._guard.signature_failed(request))

    def counters(self) -> list[tuple[str, str, str, int, int, int, int]]:
        """Return the per-account counters `/metrics` shows."""
        return self.runtime.counters() if self.runtime is not None else []
