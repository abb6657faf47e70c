"""Parse, admit, call and answer the requests of one connection (spec §7, §9, §11).

The dispatcher owns everything between a text frame and its response frames; the
connection only moves bytes. It is testable without a socket: give it an `Endpoint`.

Invariants:
- Requests are admitted in the spec's order: frame, method, role/scope, params.
- Only typed `RequestError`s reach the client as they are; any other failure is logged
  and answered `UNAVAILABLE` "internal error", never with the exception's text.
- A handler that answered early (`agent`) no longer counts toward the requests in
  progress (§11), but is still cancelled when the connection goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

from pydantic import ValidationError

from ..protocol.detail_codes import RATE_LIMITED
from ..protocol.errors import InvalidRequest, RequestError, Unavailable, internal_error
from ..protocol.frames import FrameError, RequestFrame, encode_error, encode_response, parse_request
from ..protocol.guard import ConnectionGuard
from ..protocol.handshake import CLOSE_POLICY
from ..protocol.limits import Limits
from ..protocol.scopes import Refusal, authorize
from ..protocol.validation import describe_validation_error
from .context import CallContext, Caller
from .idempotency import IdempotentCalls
from .metrics import GatewayMetrics
from .registry import Idempotency, MethodRegistry, MethodSpec
from .services import Services

__all__ = ["DispatchTable", "Dispatcher", "Endpoint"]


class Endpoint(Caller, Protocol):
    """The connection side of a dispatcher: who is calling, and how to send and close."""

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded frame for the socket."""

    def close(self, code: int, reason: str) -> None:
        """Close the socket with `code`."""


@dataclass(frozen=True, slots=True)
class DispatchTable:
    """What every connection's dispatcher shares: the methods and what they run with."""

    methods: MethodRegistry
    services: Services
    idempotent: IdempotentCalls
    metrics: GatewayMetrics
    limits: Limits


class Dispatcher:
    """Turn one connection's request frames into handler calls and response frames."""

    # Slots: one per connection, and thousands of idle connections each save a dict.
    __slots__ = (
        "_close_after_answer",
        "_endpoint",
        "_first_answered",
        "_guard",
        "_log",
        "_requests",
        "_table",
    )

    def __init__(
        self, endpoint: Endpoint, table: DispatchTable, log: logging.LoggerAdapter[Any]
    ) -> None:
        self._endpoint = endpoint
        self._table = table
        self._log = log
        self._guard = ConnectionGuard(table.limits)
        self._requests: set[asyncio.Task[None]] = set()
        # Requests that sent their first response but go on (`agent` until its final).
        self._first_answered: set[asyncio.Task[None]] = set()
        self._close_after_answer: tuple[int, str] | None = None

    @property
    def in_progress(self) -> int:
        """Requests being handled that have not answered yet."""
        return len(self._requests)

    def tasks(self) -> list[asyncio.Task[None]]:
        """Return every request task still running, answered or not."""
        return [*self._requests, *self._first_answered]

    # -- in ------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> None:
        """Handle one request frame: answer it now or start a task that will."""
        try:
            request = parse_request(text)
        except FrameError as exc:
            self._answer_error(exc.reply_id, exc)
            if self._guard.invalid_frame():
                self._endpoint.close(CLOSE_POLICY, "repeated invalid frames")
            return
        self._guard.valid_request()
        try:
            spec, params = self._admit(request)
        except RequestError as exc:
            self._answer_error(request.id, exc)
            if isinstance(exc, Refusal) and self._guard.refusal():
                self._endpoint.close(CLOSE_POLICY, "repeated unauthorized calls")
            return
        if not spec.is_async:
            self._call_now(spec, params, request)
            return
        if len(self._requests) >= self._table.limits.max_requests_in_progress:
            self._answer_error(
                request.id,
                Unavailable(
                    "too many requests in progress; wait for responses before sending more",
                    details={"code": RATE_LIMITED},
                    retryable=True,
                    retry_after_ms=100,
                ),
            )
            return
        task = asyncio.create_task(self._call(spec, params, request))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _admit(self, request: RequestFrame) -> tuple[MethodSpec, Any]:
        """Find, authorize and validate one request, in the spec's order (§7)."""
        if request.method == "connect":
            raise InvalidRequest("connect is only valid as the first request")
        spec = self._table.methods.get(request.method)
        if spec is None:
            raise InvalidRequest(f"unknown method: {request.method}")
        endpoint = self._endpoint
        authorize(
            role=endpoint.role,
            scopes=endpoint.scopes,
            method_role=spec.role,
            method_scope=spec.scope,
        )
        self._guard.authorized()
        raw = request.params
        if raw is None or raw == {}:
            empty = spec.empty_params()
            if empty is not None:
                return spec, empty
        try:
            params = spec.params.model_validate({} if raw is None else raw)
        except ValidationError as exc:
            raise InvalidRequest(
                f"invalid {spec.name} params: {describe_validation_error(exc)}"
            ) from None
        return spec, params

    # -- calling -------------------------------------------------------------------

    def _call_now(self, spec: MethodSpec, params: Any, request: RequestFrame) -> None:
        """Run a handler that never waits, inline, and answer at once."""
        started = time.perf_counter()
        context = CallContext(self._endpoint, request.id, self._table.services)
        # Only idempotent methods have the field; getattr on a missing one is slow in pydantic.
        key = None if spec.idempotency is Idempotency.NONE else params.idempotencyKey
        try:
            if key is not None:
                result = self._table.idempotent.run_now(
                    spec.name, key, lambda: spec.handler(context, params)
                )
            else:
                result = spec.handler(context, params)
        except Exception as exc:
            self._answer_failure(spec, request, exc)
        else:
            self.respond(request.id, result)
        self._answered()
        self._table.metrics.observe_latency(spec.name, time.perf_counter() - started)

    async def _call(self, spec: MethodSpec, params: Any, request: RequestFrame) -> None:
        started = time.perf_counter()
        context = CallContext(self._endpoint, request.id, self._table.services)
        dedupe = spec.idempotency is not Idempotency.NONE and not spec.handler_dedupes
        key = params.idempotencyKey if dedupe else None
        try:
            if key is not None:
                result = await self._table.idempotent.run(
                    spec.name, key, lambda: spec.handler(context, params)
                )
            else:
                result = await spec.handler(context, params)
        except Exception as exc:
            self._answer_failure(spec, request, exc)
        else:
            self.respond(request.id, result)
        self._answered()
        self._table.metrics.observe_latency(spec.name, time.perf_counter() - started)

    def _answer_failure(self, spec: MethodSpec, request: RequestFrame, exc: Exception) -> None:
        """Answer a handler's failure; only typed errors reach the client as they are."""
        if isinstance(exc, RequestError):
            self._answer_error(request.id, exc, exc.payload)
            return
        self._log.error("method %s failed", spec.name, exc_info=exc)
        self._answer_error(request.id, internal_error())

    # -- out -----------------------------------------------------------------------

    def respond(self, request_id: str, payload: Any) -> None:
        """Queue a successful response, or `response too large` if it would not fit."""
        frame = encode_response(request_id, payload)
        if len(frame) > self._table.limits.max_payload:
            self._answer_error(request_id, Unavailable("response too large"))
            return
        self._endpoint.send_frame(frame)
        task = cast("asyncio.Task[None] | None", asyncio.current_task())
        if task is not None and task in self._requests:
            self._requests.discard(task)
            self._first_answered.add(task)
            task.add_done_callback(self._first_answered.discard)

    def _answer_error(self, request_id: str, error: RequestError, payload: Any = None) -> None:
        protocol = self._endpoint.protocol
        self._table.metrics.errors[error.to_shape(protocol)["code"]] += 1
        self._endpoint.send_frame(encode_error(request_id, error, protocol, payload))

    def close_after_answer(self, code: int, reason: str) -> None:
        """Close the connection once the answer to the request being handled is queued."""
        self._close_after_answer = (code, reason)

    def _answered(self) -> None:
        pending, self._close_after_answer = self._close_after_answer, None
        if pending is not None:
            self._endpoint.close(*pending)
