"""The dispatcher without a socket: parse -> admit -> call -> respond, and its guards."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from clawgate.gateway.context import CallContext
from clawgate.gateway.dispatcher import Dispatcher, DispatchTable
from clawgate.gateway.idempotency import IdempotentCalls
from clawgate.gateway.methods._common import Params
from clawgate.gateway.metrics import GatewayMetrics
from clawgate.gateway.registry import Idempotency, MethodRegistry, method
from clawgate.gateway.services import Services
from clawgate.protocol.connect import ClientInfo
from clawgate.protocol.dedupe import DedupeCache
from clawgate.protocol.handshake import CLOSE_AUTH_CHANGED, CLOSE_POLICY
from clawgate.protocol.limits import Limits
from clawgate.protocol.scopes import ADMIN, READ, Role

SECRET = "the database password is hunter2"


class EchoParams(Params):
    """Params of `test.echo`."""

    text: str


class KeyedParams(Params):
    """Params of `test.count`."""

    idempotencyKey: str


@method("test.echo", params=EchoParams, result=dict, scope=READ)
def echo(ctx: CallContext, params: EchoParams) -> dict[str, Any]:
    """Answer inline with the text and who asked."""
    return {"text": params.text, "conn": ctx.caller.conn_id}


@method("test.admin", params=EchoParams, result=dict, scope=ADMIN)
def admin_only(ctx: CallContext, params: EchoParams) -> dict[str, Any]:
    """Answer only admins."""
    return {"ok": True}


@method("test.fail", params=EchoParams, result=dict, scope=READ)
async def fail(ctx: CallContext, params: EchoParams) -> dict[str, Any]:
    """Fail the way a buggy handler would."""
    raise RuntimeError(SECRET)


@method("test.twice", params=EchoParams, result=dict, scope=READ)
async def twice(ctx: CallContext, params: EchoParams) -> dict[str, Any]:
    """Answer at once, then again after a while (as `agent` does)."""
    ctx.caller.respond(ctx.request_id, {"status": "accepted"})
    await asyncio.sleep(0.05)
    return {"status": "done"}


@method("test.block", params=EchoParams, result=dict, scope=READ)
async def block(ctx: CallContext, params: EchoParams) -> dict[str, Any]:
    """Never answer until cancelled."""
    await asyncio.Event().wait()
    return {}


@method("test.close", params=EchoParams, result=dict, scope=READ)
def close_me(ctx: CallContext, params: EchoParams) -> dict[str, Any]:
    """Ask to be closed once answered."""
    ctx.caller.close_after_answer(CLOSE_AUTH_CHANGED, "gateway auth changed")
    return {"ok": True}


CALLS: list[str] = []


@method(
    "test.count",
    params=KeyedParams,
    result=dict,
    scope=READ,
    idempotency=Idempotency.REQUIRED,
)
def count(ctx: CallContext, params: KeyedParams) -> dict[str, Any]:
    """Count real calls; duplicates must be answered from the cache."""
    CALLS.append(params.idempotencyKey)
    return {"calls": len(CALLS)}


@dataclass
class Endpoint:
    """A connection that records what the dispatcher sends and closes."""

    scopes: tuple[str, ...] = (READ,)
    role: Role = Role.OPERATOR
    conn_id: str = "conn-1"
    protocol: int = 4
    client: ClientInfo | None = None
    device_id: str | None = None
    remote_ip: str = "127.0.0.1"
    frames: list[dict[str, Any]] = field(default_factory=list)
    closed: list[tuple[int, str]] = field(default_factory=list)
    dispatcher: Dispatcher | None = None

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))

    def respond(self, request_id: str, payload: Any) -> None:
        assert self.dispatcher is not None
        self.dispatcher.respond(request_id, payload)

    def close_after_answer(self, code: int, reason: str) -> None:
        assert self.dispatcher is not None
        self.dispatcher.close_after_answer(code, reason)


def dispatcher_for(endpoint: Endpoint, limits: Limits | None = None) -> Dispatcher:
    limits = limits or Limits()
    methods = MethodRegistry()
    for handler in (echo, admin_only, fail, twice, block, close_me, count):
        methods.register(handler)
    table = DispatchTable(
        methods=methods,
        # These handlers use no service: the dispatcher only passes the bundle through.
        services=cast(Services, None),
        idempotent=IdempotentCalls(DedupeCache(limits), lambda: 0),
        metrics=GatewayMetrics(),
        limits=limits,
    )
    endpoint.dispatcher = Dispatcher(endpoint, table, logging.LoggerAdapter(logging.getLogger()))
    return endpoint.dispatcher


def req(method_name: str, params: Any = None, frame_id: str = "1") -> bytes:
    frame: dict[str, Any] = {"type": "req", "id": frame_id, "method": method_name}
    if params is not None:
        frame["params"] = params
    return orjson.dumps(frame)


async def test_an_inline_handler_is_answered_at_once() -> None:
    endpoint = Endpoint()
    dispatcher_for(endpoint).receive(req("test.echo", {"text": "hi"}))
    assert endpoint.frames == [
        {"type": "res", "id": "1", "ok": True, "payload": {"text": "hi", "conn": "conn-1"}}
    ]


def test_an_unknown_method_is_an_invalid_request() -> None:
    endpoint = Endpoint()
    dispatcher_for(endpoint).receive(req("nope"))
    (frame,) = endpoint.frames
    assert frame["ok"] is False and frame["error"]["code"] == "INVALID_REQUEST"
    assert frame["error"]["message"] == "unknown method: nope"


def test_connect_after_the_handshake_is_refused() -> None:
    endpoint = Endpoint()
    dispatcher_for(endpoint).receive(req("connect", {}))
    assert endpoint.frames[0]["error"]["message"] == "connect is only valid as the first request"


def test_invalid_params_name_the_method() -> None:
    endpoint = Endpoint()
    dispatcher_for(endpoint).receive(req("test.echo", {"text": 5}))
    error = endpoint.frames[0]["error"]
    assert error["code"] == "INVALID_REQUEST" and error["message"].startswith(
        "invalid test.echo params"
    )


def test_a_missing_scope_is_forbidden_on_v4_and_invalid_request_on_v3() -> None:
    v4, v3 = Endpoint(), Endpoint(protocol=3)
    dispatcher_for(v4).receive(req("test.admin", {"text": "x"}))
    dispatcher_for(v3).receive(req("test.admin", {"text": "x"}))
    assert v4.frames[0]["error"]["code"] == "FORBIDDEN"
    assert v4.frames[0]["error"]["details"]["missingScope"] == ADMIN
    assert v3.frames[0]["error"]["code"] == "INVALID_REQUEST"


def test_repeated_refusals_close_the_socket_with_1008() -> None:
    limits = Limits(refusals_in_a_row=3)
    endpoint = Endpoint()
    dispatcher = dispatcher_for(endpoint, limits)
    for index in range(3):
        dispatcher.receive(req("test.admin", {"text": "x"}, str(index)))
    assert endpoint.closed == [(CLOSE_POLICY, "repeated unauthorized calls")]


def test_repeated_invalid_frames_close_the_socket_with_1008() -> None:
    limits = Limits(invalid_frames_in_a_row=2)
    endpoint = Endpoint()
    dispatcher = dispatcher_for(endpoint, limits)
    dispatcher.receive(b"{not json")
    assert endpoint.closed == []
    dispatcher.receive(b"[]")
    assert endpoint.closed == [(CLOSE_POLICY, "repeated invalid frames")]


async def test_an_unexpected_failure_never_shows_its_text() -> None:
    endpoint = Endpoint()
    dispatcher = dispatcher_for(endpoint)
    dispatcher.receive(req("test.fail", {"text": "x"}))
    await asyncio.gather(*dispatcher.tasks())
    assert endpoint.frames == [
        {
            "type": "res",
            "id": "1",
            "ok": False,
            "error": {"code": "UNAVAILABLE", "message": "internal error"},
        }
    ]
    assert SECRET not in str(endpoint.frames)


async def test_an_early_answer_stops_counting_as_in_progress() -> None:
    endpoint = Endpoint()
    dispatcher = dispatcher_for(endpoint)
    dispatcher.receive(req("test.twice", {"text": "x"}))
    assert dispatcher.in_progress == 1
    await asyncio.sleep(0.01)
    assert [f["payload"] for f in endpoint.frames] == [{"status": "accepted"}]
    assert dispatcher.in_progress == 0 and len(dispatcher.tasks()) == 1
    await asyncio.gather(*dispatcher.tasks())
    assert [f["payload"] for f in endpoint.frames] == [{"status": "accepted"}, {"status": "done"}]


async def test_too_many_requests_in_progress_are_rate_limited() -> None:
    endpoint = Endpoint()
    dispatcher = dispatcher_for(endpoint, Limits(max_requests_in_progress=2))
    for index in range(3):
        dispatcher.receive(req("test.block", {"text": "x"}, str(index)))
    (frame,) = endpoint.frames
    assert frame["id"] == "2" and frame["error"]["details"] == {"code": "RATE_LIMITED"}
    assert frame["error"]["retryable"] is True
    for task in dispatcher.tasks():
        task.cancel()
    await asyncio.gather(*dispatcher.tasks(), return_exceptions=True)


async def test_close_after_answer_closes_once_the_answer_is_queued() -> None:
    endpoint = Endpoint()
    dispatcher_for(endpoint).receive(req("test.close", {"text": "x"}))
    assert endpoint.frames[0]["ok"] is True
    assert endpoint.closed == [(CLOSE_AUTH_CHANGED, "gateway auth changed")]


async def test_a_duplicate_idempotency_key_is_answered_from_the_cache() -> None:
    CALLS.clear()
    endpoint = Endpoint()
    dispatcher = dispatcher_for(endpoint)
    dispatcher.receive(req("test.count", {"idempotencyKey": "k"}, "a"))
    dispatcher.receive(req("test.count", {"idempotencyKey": "k"}, "b"))
    assert CALLS == ["k"]
    assert [f["payload"] for f in endpoint.frames] == [{"calls": 1}, {"calls": 1}]


async def test_a_response_too_large_is_an_error() -> None:
    endpoint = Endpoint()
    limits = Limits(max_payload=Limits().preauth_max_payload)
    dispatcher_for(endpoint, limits).receive(req("test.echo", {"text": "x" * limits.max_payload}))
    assert endpoint.frames[0]["error"]["message"] == "response too large"
