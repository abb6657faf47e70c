"""Webhooks: `POST <path>/wake`, `POST <path>/agent` and mapped hooks `POST <path>/<name>`.

Checks run in this order, and the first failure answers:
1. a token in the query string: 400, never checked (URLs end up in logs and histories);
2. an unknown mapped hook is answered like a token route that found nothing, so only a
   caller holding the token learns which names exist; a source outside a mapping's
   `allow_from`: 403;
3. the address's lockout (429), then the credential: the hooks token (`Authorization:
   Bearer` or `x-clawgate-token`), or for a mapping with a secret its HMAC signature
   over the exact body; a failure counts toward the same lockout as a failed WebSocket
   connect and is answered after the same delay (401);
4. the credential's rate limit (429 with Retry-After), the body's size (413), its JSON;
5. the action. Runs get ordinary run ids (`agent.wait` works on them); an idempotency key
   (`idempotencyKey`, the `Idempotency-Key` header or a mapping's `idempotency_header`)
   is the run id, so a retried delivery finds its run instead of starting a second.
   `deliver: true` sends the run's final reply to `channel`/`to` once it ends (WebChat's
   main chat by default), through the same deliverers as cron jobs and heartbeats; a
   channel that is not configured, or a messaging channel without `to`, is refused first.

Hook content is untrusted: it reaches the agent only inside `wrap_external`'s markers, and
a hook can do no more than `operator.write` allows (start runs, queue a wake).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import hdrs, web

from ..agents.catalog import AgentEntry, agent_catalog, agent_for_model, session_key_for
from ..agents.run import Run, RunStatus
from ..agents.sessions import MAIN_SESSION_KEY
from ..automation.delivery import WEBCHAT, DeliveryError, DeliveryRouter, DeliveryTarget
from ..config import AgentSection, HookMappingSection, HooksSection
from ..protocol.errors import RequestError
from ..protocol.hooks import (
    FORBIDDEN_SOURCE,
    INVALID_REQUEST,
    NOT_FOUND,
    NOT_LINKED,
    PAYLOAD_TOO_LARGE,
    QUERY_TOKEN_NAMES,
    QUERY_TOKEN_REFUSED,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAVAILABLE,
    HookError,
    RateLimiter,
    address_allowed,
    parse_agent,
    parse_body,
    parse_wake,
    render_template,
    signature_valid,
    wrap_external,
)
from ..protocol.http_auth import Refusal, Refused, bearer_token
from .agent_service import AgentService
from .heartbeat import HeartbeatRunner
from .http_guard import BodyTooLarge, HttpGuard
from .idempotency import IdempotentCalls
from .system_events import SystemEvents

__all__ = ["HookService"]

logger = logging.getLogger(__name__)

TOKEN_HEADER: Final = "x-clawgate-token"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_KEY_MAX: Final = 256

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _hook_errors(handler: Handler) -> Handler:
    """Answer every failure as `{"ok": false, "error": {...}}`; never with exception text."""

    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except HookError as exc:
            headers = {}
            if exc.retry_after_s is not None:
                headers["Retry-After"] = str(exc.retry_after_s)
            return web.json_response(exc.body(), status=exc.status, headers=headers)
        except RequestError as exc:
            return web.json_response(HookError(400, exc.code, exc.message).body(), status=400)
        except Exception:
            logger.exception("webhook %s failed", request.path)
            error = HookError(500, UNAVAILABLE, "internal error; see the gateway log")
            return web.json_response(error.body(), status=500)

    return guarded


def _refused(refused: Refused, what: str) -> HookError:
    if refused.reason is Refusal.LOCKED_OUT:
        seconds = math.ceil(refused.retry_after_ms / 1000)
        return HookError(
            429,
            RATE_LIMITED,
            f"too many failed attempts from your address; retry in {seconds} s",
            retry_after_s=seconds,
        )
    if refused.reason is Refusal.MISSING:
        return HookError(
            401,
            UNAUTHORIZED,
            f"{what} missing: send the hooks token in Authorization: Bearer <token> or "
            f"{TOKEN_HEADER}",
        )
    return HookError(401, UNAUTHORIZED, f"{what} mismatch")


class HookService:
    """Serve the webhook routes; own the heartbeat a wake may start."""

    def __init__(
        self,
        *,
        settings: HooksSection,
        secrets: Mapping[str, str],
        agents: AgentService,
        agent: AgentSection,
        system_events: SystemEvents,
        heartbeats: HeartbeatRunner,
        guard: HttpGuard,
        idempotent: IdempotentCalls,
        delivery: DeliveryRouter,
        clock: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._agents = agents
        self._catalog = agent_catalog(agent)
        self._system_events = system_events
        self._heartbeats = heartbeats
        self._guard = guard
        self._idempotent = idempotent
        self._delivery = delivery
        self._clock = clock
        self._deliveries: set[asyncio.Task[None]] = set()
        self._limiter = RateLimiter(settings.rate_limit_per_minute)
        self._beat: asyncio.Task[Any] | None = None

    def add_routes(self, app: web.Application) -> None:
        """Attach the hook routes under the configured path."""
        base = self._settings.path
        app.router.add_post(f"{base}/wake", _hook_errors(self.wake))
        app.router.add_post(f"{base}/agent", _hook_errors(self.agent))
        app.router.add_post(base + "/{name}", _hook_errors(self.mapped))

    async def stop(self) -> None:
        """Cancel a heartbeat a wake started and deliveries still waiting for their run."""
        tasks = [*self._deliveries, *([self._beat] if self._beat is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- checks ---------------------------------------------------------------------------

    @staticmethod
    def _refuse_query_token(request: web.Request) -> None:
        if QUERY_TOKEN_NAMES & set(request.query):
            raise HookError(
                400,
                QUERY_TOKEN_REFUSED,
                "tokens in the query string are refused: URLs end up in logs and histories; "
                f"send it in Authorization: Bearer <token> or {TOKEN_HEADER}",
            )

    async def _token(self, request: web.Request) -> None:
        """Authenticate with the hooks token and spend one request of its rate limit."""
        expected = self._settings.token
        assert expected is not None  # the config refuses enabled hooks without one
        given = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
        if given is None:
            given = request.headers.get(TOKEN_HEADER) or None
        outcome = self._guard.hook_token(request, given, expected)
        if isinstance(outcome, Refused):
            await self._guard.delay(outcome)
            raise _refused(outcome, "hook token")
        self._rate("token")

    async def _signature(self, request: web.Request, name: str, secret: str, raw: bytes) -> None:
        """Authenticate a mapped hook by its HMAC signature over the body."""
        mapping = self._settings.mappings[name]
        if not signature_valid(secret, raw, request.headers.get(mapping.signature_header)):
            refused = self._guard.signature_failed(request)
            await self._guard.delay(refused)
            raise HookError(
                401,
                UNAUTHORIZED,
                f"{mapping.signature_header} missing or wrong: sign the exact body with "
                "HMAC-SHA256 and the hook's secret, as sha256=<hex>",
            )
        self._rate(f"hook:{name}")

    def _rate(self, key: str) -> None:
        wait_ms = self._limiter.take(key, self._clock())
        if wait_ms:
            seconds = math.ceil(wait_ms / 1000)
            raise HookError(
                429,
                RATE_LIMITED,
                f"over {self._settings.rate_limit_per_minute} requests a minute for this "
                f"credential; retry in {seconds} s",
                retry_after_s=seconds,
            )

    async def _read(self, request: web.Request) -> bytes:
        try:
            return await self._guard.read_body(request, self._settings.max_body_bytes)
        except BodyTooLarge as exc:
            raise HookError(
                413, PAYLOAD_TOO_LARGE, f"the body is over {exc.limit} bytes; send less"
            ) from None

    def _idempotency_key(self, request: web.Request, *candidates: str | None) -> str | None:
        for key in (*candidates, request.headers.get(IDEMPOTENCY_HEADER)):
            if key:
                if len(key) > _KEY_MAX:
                    raise HookError(
                        400, INVALID_REQUEST, f"the idempotency key is over {_KEY_MAX} characters"
                    )
                return key
        return None

    async def _start_run(self, key: str, message: str, run_id: str | None) -> tuple[Run, bool]:
        """Start (or, for a known run id, find) the run answering `message` in `key`."""
        agents = self._agents
        limit = agents.settings.max_input_chars
        if len(message) > limit:
            raise HookError(
                400,
                INVALID_REQUEST,
                f"the message is {len(message)} characters, over the limit of {limit} "
                "(agent.max_input_chars); send less",
            )

        async def session() -> Any:
            return await agents.sessions.ensure(key)

        run_id = run_id or str(uuid.uuid4())
        run, created = await agents.run_once(run_id, session, message, agents.settings.timeout_s)
        logger.info("webhook run %s in %s (%s)", run.run_id, key, "new" if created else "replay")
        return run, created

    def _delivery_target(self, channel: str | None, to: str | None) -> DeliveryTarget:
        """Return where `deliver` sends the reply, or refuse what cannot be delivered."""
        channel = channel or WEBCHAT
        if not self._delivery.knows(channel):
            known = ", ".join(self._delivery.channels())
            raise HookError(
                400,
                NOT_LINKED,
                f"channel {channel!r} is not configured; deliver to one of: {known}",
            )
        if channel != WEBCHAT and not to:
            raise HookError(
                400,
                INVALID_REQUEST,
                f"deliver to channel {channel!r} needs `to`: the peer to send to (a chat id)",
            )
        return DeliveryTarget(channel, to or MAIN_SESSION_KEY)

    def _deliver_when_done(self, run: Run, target: DeliveryTarget, label: str) -> None:
        task = asyncio.create_task(self._deliver(run, target, label), name="hook-deliver")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, run: Run, target: DeliveryTarget, label: str) -> None:
        await run.done.wait()
        text = run.text.strip() if run.status is RunStatus.OK else ""
        if not text:
            logger.info("webhook run %s ended %s: nothing to deliver", run.run_id, run.status)
            return
        try:
            await self._delivery.deliver(target, text, label=label)
        except DeliveryError as exc:
            # The channel layer has recorded the failed send; say so where operators look.
            logger.warning("webhook run %s: delivery to %s failed: %s", run.run_id, target, exc)

    # -- routes ---------------------------------------------------------------------------

    async def wake(self, request: web.Request) -> web.Response:
        """Queue the text as a system event for the main session; beat now if asked."""
        self._refuse_query_token(request)
        await self._token(request)
        hook = parse_wake(await self._read(request))

        async def call() -> dict[str, Any]:
            await self._system_events.push(wrap_external("wake", hook.text), self._clock())
            if hook.mode == "now":
                self._beat_now()
            return {"ok": True}

        key = self._idempotency_key(request)
        result = await (self._idempotent.run("hooks.wake", key, call) if key else call())
        return web.json_response(result)

    async def agent(self, request: web.Request) -> web.Response:
        """Start an agent run answering the body's message."""
        self._refuse_query_token(request)
        await self._token(request)
        hook = parse_agent(await self._read(request))
        entry = agent_for_model(self._catalog, hook.agentId)
        if entry is None:
            raise HookError(400, INVALID_REQUEST, f"unknown agentId {hook.agentId!r}")
        target = self._delivery_target(hook.channel, hook.to) if hook.deliver else None
        source = hook.name or "agent"
        key = self._session(hook.sessionKey or f"hook:{source}", entry)
        run_id = self._idempotency_key(request, hook.idempotencyKey)
        message = wrap_external(source, hook.message)
        run, created = await self._start_run(key, message, run_id)
        if target is not None and created:  # a replayed request's run delivers once
            self._deliver_when_done(run, target, f"hook: {source}")
        return self._accepted(run.run_id)

    async def mapped(self, request: web.Request) -> web.Response:
        """Turn the JSON body into an agent message with the hook's template and run it."""
        self._refuse_query_token(request)
        name = request.match_info["name"]
        mapping = self._settings.mappings.get(name)
        secret = self._secrets.get(name)
        if mapping is None or secret is None:
            await self._token(request)
        if mapping is None:
            raise HookError(404, NOT_FOUND, f"no hook named {name!r}")
        if not address_allowed(request.remote or "", mapping.allow_from):
            raise HookError(403, FORBIDDEN_SOURCE, "this address may not call this hook")
        if secret is not None:
            locked = self._guard.lockout(request)
            if locked is not None:
                raise _refused(locked, "signature")
        raw = await self._read(request)
        if secret is not None:
            await self._signature(request, name, secret, raw)
        data = parse_body(raw)
        if not isinstance(data, dict):
            raise HookError(400, INVALID_REQUEST, "the body must be a JSON object")
        message = render_template(mapping.template, data)
        if not message.strip():
            raise HookError(400, INVALID_REQUEST, "the hook's template rendered no text")
        key = self._session(mapping.session_key or f"hook:{name}", self._catalog[0])
        run_id = self._idempotency_key(request, self._delivery_id(request, mapping))
        run, _ = await self._start_run(key, wrap_external(name, message), run_id)
        return self._accepted(run.run_id)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _delivery_id(request: web.Request, mapping: HookMappingSection) -> str | None:
        header = mapping.idempotency_header
        return request.headers.get(header) if header is not None else None

    @staticmethod
    def _session(raw: str, entry: AgentEntry) -> str:
        try:
            return session_key_for(entry, raw)
        except ValueError as exc:
            raise HookError(400, INVALID_REQUEST, f"invalid sessionKey: {exc}") from None

    @staticmethod
    def _accepted(run_id: str) -> web.Response:
        return web.json_response({"ok": True, "runId": run_id}, status=202)

    def _beat_now(self) -> None:
        """Run a heartbeat now, unless one a wake started is still running."""
        if self._beat is not None and not self._beat.done():
            return
        self._beat = asyncio.create_task(self._heartbeats.beat(), name="hook-wake-beat")
        self._beat.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the heartbeat a wake started failed", exc_info=task.exception())
