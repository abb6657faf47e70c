"""The OpenAI-compatible endpoints: `/v1/models`, `/v1/chat/completions`, `/v1/responses`.

Each completion is an ordinary agent run (WS operators see its `agent` and `chat`
events) in the session named by the `x-clawgate-session` header or the `user` field, or
in a fresh session. A new session is seeded with the request's earlier messages, so a
client that resends the whole conversation each time (as most do) is understood; an
existing session's own transcript is the history, and the earlier messages are not
stored twice. The run's id is in the `x-clawgate-run-id` response header.

Streams read the run's events from the bus. The subscription is made before the run is
started, with no await between them and the run's first event, or the first text is lost.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from ..agents.backend import ErrorKind
from ..agents.catalog import AgentEntry, agent_catalog, agent_for_model, session_key_for
from ..agents.run import AgentEvent, Run, RunFinished, RunMessage, RunStatus
from ..agents.sessions import canonical_key
from ..bus import Subscription
from ..config import AgentSection, OpenAIHttpSection
from ..protocol.http_auth import Admitted, Refusal, Refused
from ..protocol.openai_errors import (
    CONTEXT_LENGTH_EXCEEDED,
    INSUFFICIENT_PERMISSIONS,
    INVALID_API_KEY,
    INVALID_VALUE,
    MODEL_NOT_FOUND,
    RATE_LIMIT_ERROR,
    RATE_LIMIT_EXCEEDED,
    REQUEST_TOO_LARGE,
    RUN_ABORTED,
    RUN_TIMEOUT,
    SERVER_ERROR,
    OpenAIError,
    error_body,
)
from ..protocol.openai_request import (
    Conversation,
    Turn,
    parse_chat_request,
    parse_json,
    parse_responses_request,
)
from ..protocol.openai_response import (
    SSE_DONE,
    ResponseStream,
    chat_chunk,
    chat_completion,
    model_object,
    response_object,
    sse,
)
from .agent_service import AgentService
from .http_guard import BodyTooLarge, HttpGuard

__all__ = ["OpenAIApi"]

logger = logging.getLogger(__name__)

SESSION_HEADER: Final = "x-clawgate-session"
RUN_ID_HEADER: Final = "x-clawgate-run-id"
_SSE_HEADERS: Final = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _auth_error(refused: Refused) -> OpenAIError:
    if refused.reason is Refusal.LOCKED_OUT:
        seconds = math.ceil(refused.retry_after_ms / 1000)
        return OpenAIError(
            429,
            f"Too many failed authentication attempts from your address; retry in {seconds} s.",
            type=RATE_LIMIT_ERROR,
            code=RATE_LIMIT_EXCEEDED,
            retry_after_s=seconds,
        )
    if refused.reason is Refusal.MISSING:
        return OpenAIError(
            401,
            "You didn't provide an API key. You need to provide the gateway token or a device "
            "token in an Authorization header using Bearer auth (i.e. Authorization: Bearer "
            "YOUR_TOKEN).",
        )
    if refused.reason is Refusal.INSUFFICIENT_SCOPE:
        return OpenAIError(
            401,
            "This device token lacks operator.write; approve the scope for the device or use "
            "the gateway token.",
            code=INSUFFICIENT_PERMISSIONS,
        )
    return OpenAIError(
        401,
        "Incorrect API key provided. Use the gateway token or a device token holding "
        "operator.write.",
        code=INVALID_API_KEY,
    )


def _run_error(run: Run) -> OpenAIError:
    """Return the error a run that did not end well is answered with."""
    message = run.error or "the agent run failed"
    if run.status is RunStatus.TIMEOUT:
        return OpenAIError(504, message, type=SERVER_ERROR, code=RUN_TIMEOUT)
    if run.status is RunStatus.ABORTED:
        return OpenAIError(500, "The agent run was aborted.", type=SERVER_ERROR, code=RUN_ABORTED)
    if run.error_kind is ErrorKind.RATE_LIMIT:
        return OpenAIError(429, message, type=RATE_LIMIT_ERROR, code=RATE_LIMIT_EXCEEDED)
    if run.error_kind is ErrorKind.CONTEXT_LENGTH:
        return OpenAIError(400, message, code=CONTEXT_LENGTH_EXCEEDED)
    return OpenAIError(500, message, type=SERVER_ERROR)


def _run_of(message: RunMessage) -> str:
    return message.run_id if isinstance(message, AgentEvent) else message.run.run_id


def _openai_errors(handler: Handler) -> Handler:
    """Answer every failure of `handler` in OpenAI's error shape; never with exception text."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OpenAIError as exc:
            headers = {}
            if exc.retry_after_s is not None:
                headers["Retry-After"] = str(exc.retry_after_s)
            return web.json_response(exc.body(), status=exc.status, headers=headers)
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            body = error_body(
                "The server had an error while processing your request.", type=SERVER_ERROR
            )
            return web.json_response(body, status=500)

    return guarded


class OpenAIApi:
    """Serve the OpenAI-compatible endpoints from the gateway's agents."""

    def __init__(
        self,
        *,
        agents: AgentService,
        guard: HttpGuard,
        settings: OpenAIHttpSection,
        agent: AgentSection,
        clock: Callable[[], int],
    ) -> None:
        self._agents = agents
        self._guard = guard
        self._max_body = settings.max_body_bytes
        self._catalog = agent_catalog(agent)
        self._clock = clock
        self._created_s = clock() // 1000

    def add_routes(self, app: web.Application) -> None:
        """Attach the `/v1` routes."""
        app.router.add_get("/v1/models", _openai_errors(self.models))
        app.router.add_get("/v1/models/{model_id}", _openai_errors(self.model))
        app.router.add_post("/v1/chat/completions", _openai_errors(self.chat_completions))
        app.router.add_post("/v1/responses", _openai_errors(self.responses))

    # -- requests -----------------------------------------------------------------------

    async def _authenticate(self, request: web.Request) -> None:
        outcome = self._guard.operator(request)
        if isinstance(outcome, Admitted):
            return
        await self._guard.delay(outcome)
        raise _auth_error(outcome)

    async def _json(self, request: web.Request) -> Any:
        await self._authenticate(request)
        try:
            raw = await self._guard.read_body(request, self._max_body)
        except BodyTooLarge as exc:
            raise OpenAIError(
                413,
                f"The request body is larger than {exc.limit} bytes.",
                code=REQUEST_TOO_LARGE,
            ) from None
        return parse_json(raw)

    def _agent(self, model: str | None) -> AgentEntry:
        entry = agent_for_model(self._catalog, model)
        if entry is None:
            raise OpenAIError(
                404,
                f"The model `{model}` does not exist. GET /v1/models lists this gateway's agents.",
                code=MODEL_NOT_FOUND,
            )
        return entry

    @staticmethod
    def _session_key(request: web.Request, user: str | None, entry: AgentEntry) -> str:
        """Return the session: the header's, else the `user`'s, else a fresh one."""
        named = request.headers.get(SESSION_HEADER)
        if named is not None:
            try:
                return session_key_for(entry, named.strip())
            except ValueError as exc:
                raise OpenAIError(400, f"{SESSION_HEADER}: {exc}", code=INVALID_VALUE) from None
        if user is not None:
            return canonical_key(f"openai-user:{user}", entry.agent_id)
        return canonical_key(f"openai:{uuid.uuid4()}", entry.agent_id)

    async def _start(self, run_id: str, key: str, conversation: Conversation) -> Run:
        """Start the run answering `conversation.prompt` in session `key`."""
        agents = self._agents
        prompt, limit = conversation.prompt, agents.settings.max_input_chars
        if len(prompt) > limit:
            raise OpenAIError(
                400,
                f"The last message is {len(prompt)} characters, over this gateway's limit of "
                f"{limit} (agent.max_input_chars). Send less.",
                code=INVALID_VALUE,
            )

        async def session() -> Any:
            record = await agents.sessions.ensure(key)
            if record.message_count == 0:
                for turn in conversation.earlier:
                    await agents.sessions.append(record, turn.role, turn.text)
            return record

        timeout_s = agents.settings.timeout_s
        run, _ = await agents.run_once(run_id, session, conversation.prompt, timeout_s)
        return run

    def _subscribe(self, run_id: str) -> Subscription[RunMessage]:
        return self._agents.bus.subscribe(accept=lambda message: _run_of(message) == run_id)

    async def _open_stream(self, request: web.Request, run: Run, key: str) -> web.StreamResponse:
        headers = {**_SSE_HEADERS, RUN_ID_HEADER: run.run_id, SESSION_HEADER: key}
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        return response

    async def _relay(
        self,
        run: Run,
        subscription: Subscription[RunMessage],
        response: web.StreamResponse,
        on_text: Callable[[str], bytes],
    ) -> None:
        """Write each text delta of the run until it ends; abort it if the client leaves."""
        try:
            async for message in subscription:
                if isinstance(message, RunFinished):
                    return
                if message.stream == "assistant":
                    await response.write(on_text(message.data["delta"]))
        except BaseException:
            # The client went away (or the gateway is stopping): nobody reads the answer.
            self._agents.runs.abort(run.run_id)
            raise

    # -- routes ---------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        """List the agents as models."""
        await self._authenticate(request)
        data = [model_object(entry.model_id, self._created_s) for entry in self._catalog]
        return web.json_response({"object": "list", "data": data})

    async def model(self, request: web.Request) -> web.Response:
        """Describe one agent as a model."""
        await self._authenticate(request)
        entry = self._agent(request.match_info["model_id"])
        return web.json_response(model_object(entry.model_id, self._created_s))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """Answer a Chat Completions request with one agent run."""
        chat = parse_chat_request(await self._json(request))
        entry = self._agent(chat.model)
        key = self._session_key(request, chat.user, entry)
        run_id = str(uuid.uuid4())
        completion_id = "chatcmpl-" + run_id.replace("-", "")
        created_s = self._clock() // 1000
        model = entry.model_id
        if not chat.stream:
            run = await self._start(run_id, key, chat.conversation)
            await run.done.wait()
            if run.status is not RunStatus.OK:
                raise _run_error(run)
            body = chat_completion(
                completion_id=completion_id,
                created_s=created_s,
                model=model,
                text=run.text,
                stop_reason=run.stop_reason,
                usage=run.usage,
            )
            return web.json_response(body, headers={RUN_ID_HEADER: run_id, SESSION_HEADER: key})

        def chunk(**fields: Any) -> bytes:
            return sse(
                chat_chunk(completion_id=completion_id, created_s=created_s, model=model, **fields)
            )

        subscription = self._subscribe(run_id)
        try:
            run = await self._start(run_id, key, chat.conversation)
            response = await self._open_stream(request, run, key)
            await response.write(chunk(delta={"role": "assistant", "content": ""}))
            await self._relay(
                run, subscription, response, lambda text: chunk(delta={"content": text})
            )
            if run.status is RunStatus.OK:
                tail = chunk(finished=True, stop_reason=run.stop_reason)
                if chat.include_usage:
                    tail += chunk(usage=run.usage or {})
            else:
                tail = sse(self._stream_error(run, subscription).body())
            await response.write(tail + SSE_DONE)
            await response.write_eof()
            return response
        finally:
            subscription.close()

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """Answer a Responses API request (text in, text out) with one agent run."""
        asked = parse_responses_request(await self._json(request))
        entry = self._agent(asked.model)
        key = self._session_key(request, asked.user, entry)
        run_id = str(uuid.uuid4())
        hex_id = run_id.replace("-", "")
        conversation = asked.conversation
        if asked.instructions is not None:
            earlier = (Turn("system", asked.instructions), *conversation.earlier)
            conversation = Conversation(conversation.prompt, earlier)
        template = response_object(
            response_id="resp_" + hex_id,
            message_id="msg_" + hex_id,
            created_s=self._clock() // 1000,
            model=entry.model_id,
            status="in_progress",
            instructions=asked.instructions,
            user=asked.user,
        )
        if not asked.stream:
            run = await self._start(run_id, key, conversation)
            await run.done.wait()
            if run.status is not RunStatus.OK:
                raise _run_error(run)
            body = response_object(
                response_id=template["id"],
                message_id="msg_" + hex_id,
                created_s=template["created_at"],
                model=entry.model_id,
                status="completed",
                instructions=asked.instructions,
                user=asked.user,
                text=run.text,
                usage=run.usage,
            )
            return web.json_response(body, headers={RUN_ID_HEADER: run_id, SESSION_HEADER: key})

        stream = ResponseStream(template, "msg_" + hex_id)
        subscription = self._subscribe(run_id)
        try:
            run = await self._start(run_id, key, conversation)
            response = await self._open_stream(request, run, key)
            await response.write(stream.opening())
            await self._relay(run, subscription, response, stream.delta)
            if run.status is RunStatus.OK:
                await response.write(stream.completed(run.usage))
            else:
                await response.write(stream.failed(self._stream_error(run, subscription)))
            await response.write_eof()
            return response
        finally:
            subscription.close()

    @staticmethod
    def _stream_error(run: Run, subscription: Subscription[RunMessage]) -> OpenAIError:
        if subscription.overflowed:
            return OpenAIError(
                500, "The stream fell too far behind the agent and was ended.", type=SERVER_ERROR
            )
        return _run_error(run)
