"""The gateway's channels: one `ChannelRuntime` holding WebChat and every configured account.

WebChat is the built-in `webchat` channel, an adapter like Telegram's (`channels/webchat.py`
says what that means for a channel with no external server): it is listed, supervised,
counted and sent to through the same runner and `Outbox` as the platforms. Its inbound is
`chat.send`, which goes to the agent service directly; its outbound (`send` with channel
`webchat`, heartbeat, cron and hook deliveries) goes through `WebChatPosts`, which appends to
the session and emits a `chat` final so open pages show it.

Platform channels (Telegram, ...) load their SDKs only when configured. Their turns run
through the same `AgentService` as WebChat's, so their `agent` and `chat` events reach WS
operators exactly like WebChat's, and their sessions appear in `sessions.list`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ..agents.run import AgentEvent, RunMessage, RunStatus
from ..agents.sessions import canonical_key
from ..channels.base import AccountConfig, WebhookRequest
from ..channels.manager import AccountRunner
from ..channels.runtime import ChannelRuntime, SendRequest
from ..channels.webchat import WebChatAdapter, webchat_account
from ..protocol.chat_events import chat_terminal
from ..store import StateStore
from .agent_service import AgentService
from .broadcaster import Broadcaster
from .http_guard import HttpGuard

if TYPE_CHECKING:
    from ..channels.pipeline import TurnOutcome
    from ..channels.settings import ChannelSettings

__all__ = ["WEBHOOK_PREFIX", "ChannelService", "ChannelTurns", "WebChatPosts"]

logger = logging.getLogger(__name__)

#: Platform webhooks are served under this path (then `<channel>/<secret or name>`).
WEBHOOK_PREFIX: Final = "/channels/"


class ChannelTurns:
    """Run channel turns through the gateway's agent service (the channel layer's TurnRunner)."""

    def __init__(self, agents: AgentService) -> None:
        self._agents = agents

    async def run_turn(
        self,
        session_key: str,
        text: str,
        run_id: str,
        on_text: Callable[[str], None] | None = None,
    ) -> TurnOutcome:
        """Append the message to the session, run the agent, and wait for its answer.

        `on_text` is called with the answer's whole text so far each time it grows.
        """
        from ..channels.pipeline import TurnOutcome

        agents = self._agents

        async def session() -> Any:
            return await agents.sessions.ensure(session_key)

        def streamed(message: RunMessage) -> None:
            if (
                isinstance(message, AgentEvent)
                and message.run_id == run_id
                and message.stream == "assistant"
                and on_text is not None
            ):
                on_text(str(message.data.get("text") or ""))

        # Listening before the run starts, so no delta is missed.
        remove = agents.bus.add_handler(streamed) if on_text is not None else None
        try:
            run, _ = await agents.run_once(run_id, session, text, agents.settings.timeout_s)
            if on_text is not None and run.text:
                on_text(run.text)  # a run that was already going (recovered at start)
            await run.done.wait()
        finally:
            if remove is not None:
                remove()
        ok = run.status is RunStatus.OK
        return TurnOutcome(ok, run.text, None if ok else run.summary())

    async def note(self, session_key: str, text: str, label: str) -> None:
        """Append a system note to the session (a failed delivery, say)."""
        record = await self._agents.sessions.ensure(session_key)
        await self._agents.sessions.append(record, "system", text, label=label)


class WebChatPosts:
    """Append outbound text to a session and show it on open pages (WebChat's `WebChatSessions`)."""

    def __init__(
        self, agents: AgentService, broadcaster: Broadcaster[Any], clock: Callable[[], int]
    ) -> None:
        self._agents = agents
        self._broadcaster = broadcaster
        self._clock = clock

    async def post(self, session_key: str, text: str, *, label: str, run_id: str | None) -> str:
        """Append `text` as an assistant message of `session_key`; return its message id.

        Raises:
            KeyError: no such session.
        """
        key = canonical_key(session_key)
        record = self._agents.sessions.get(key)
        if record is None:
            raise KeyError(key)
        message = await self._agents.sessions.append(record, "assistant", text, label=label)
        # A run id no page has seen: open pages of this session reload its transcript.
        payload = chat_terminal(
            run_id=run_id or message.message_id,
            session_key=key,
            seq=1,
            state="final",
            now=self._clock(),
            text=text,
        )
        self._broadcaster.broadcast("chat", payload)
        return message.message_id


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
        self.required_for_ready = bool(settings and settings.required_for_ready)
        posts = WebChatPosts(agents, broadcaster, clock)

        def webchat(account: AccountConfig, link: AccountRunner) -> WebChatAdapter:
            return WebChatAdapter(account, link, posts)

        self.runtime = ChannelRuntime(
            settings.accounts if settings is not None else (),
            store=store,
            turns=ChannelTurns(agents),
            home=home,
            clock=clock,
            backoff=settings.backoff if settings is not None else None,
            outbox=settings.outbox if settings is not None else None,
            agent_name=agents.settings.name,
            builtin=[(webchat_account(), webchat)],
        )

    async def start(self, spawn: Callable[..., Any]) -> None:
        """Start WebChat and the configured channel accounts."""
        await self.runtime.start(spawn)

    async def stop(self) -> None:
        """Stop every channel account."""
        await self.runtime.stop()

    def channel_names(self) -> list[str]:
        """Return every channel replies can go to, WebChat included."""
        return self.runtime.channel_names()

    @property
    def has_platforms(self) -> bool:
        """Whether a messaging platform (Telegram, ...) is configured, not just WebChat."""
        return self.runtime.has_platforms

    # -- status -------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Return every channel account's status, WebChat first."""
        return self.runtime.status()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Return (ready as far as channels go, state per account) for `/readyz`."""
        states = {f"{e['channel']}/{e['accountId']}": e["state"] for e in self.status()}
        if not self.required_for_ready:
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
        result = await self.runtime.send(request)
        if request.session_key is not None and request.text:
            record = await self._agents.sessions.ensure(request.session_key)
            await self._agents.sessions.append(record, "assistant", request.text, label="send")
        return result

    # -- HTTP ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve platform webhooks at `/channels/<channel>/<path>` (an HttpSurface)."""
        route = f"{WEBHOOK_PREFIX}{{channel}}/{{secret}}"
        app.router.add_post(route, self.webhook)
        # GET too: some platforms verify a webhook URL with a GET (WhatsApp's hub.challenge).
        app.router.add_get(route, self.webhook, allow_head=False)

    async def webhook(self, request: web.Request) -> web.Response:
        """Hand a platform's webhook call to the account that registered its path."""
        guard = self._guard
        locked = guard.lockout(request) if guard is not None else None
        if locked is not None:
            retry_s = str(max(1, -(-locked.retry_after_ms // 1000)))
            return web.Response(status=429, text="locked out\n", headers={"Retry-After": retry_s})
        path = f"{request.match_info['channel']}/{request.match_info['secret']}"
        handler = self.runtime.webhooks.get(path)
        if handler is None:
            # The path is a secret: a wrong one is a failed guess like a wrong token (§5.4).
            await self._failed(request)
            raise web.HTTPNotFound(text="not found\n")
        call = WebhookRequest(
            method=request.method,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            body=await request.read(),
        )
        reply = await handler(call)
        if reply.status == 401:
            await self._failed(request)
        text = reply.text or ("ok\n" if 200 <= reply.status < 300 else "refused\n")
        return web.Response(status=reply.status, text=text, content_type=reply.content_type)

    async def _failed(self, request: web.Request) -> None:
        if self._guard is not None:
            await self._guard.delay(self._guard.signature_failed(request))

    def counters(self) -> list[tuple[str, str, str, int, int, int, int]]:
        """Return the per-account counters `/metrics` shows."""
        return self.runtime.counters()
