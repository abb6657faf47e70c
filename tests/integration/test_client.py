"""Client SDK over real sockets: against a scripted fake gateway, then the real one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

if TYPE_CHECKING:
    from tests.conftest import GatewayFactory, RunningGateway

from clawgate.client import (
    Backoff,
    ClientState,
    Event,
    GatewayCallError,
    GatewayClient,
    GatewayConnectionError,
    GatewayHandshakeError,
    GatewayTimeoutError,
    SequenceGapError,
)
from clawgate.gateway.server import GatewayServer
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.limits import Limits

# -- a scripted fake gateway: lets the tests provoke what a correct server never does --------

Responder = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]

HELLO: dict[str, Any] = {
    "type": "hello-ok",
    "protocol": 4,
    "server": {"version": "fake", "connId": "fake-conn", "bootId": "boot"},
    "features": {"methods": [], "events": [], "capabilities": []},
    "snapshot": {},
    "auth": {"role": "operator", "scopes": ["operator.admin"]},
    "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000},
}


def res(frame: dict[str, Any], payload: Any = None, **extra: Any) -> dict[str, Any]:
    """Return an ok response to ``frame``."""
    return {"type": "res", "id": frame["id"], "ok": True, "payload": payload, **extra}


def event(name: str, payload: Any = None, seq: int | None = None) -> dict[str, Any]:
    """Return an event frame."""
    frame: dict[str, Any] = {"type": "event", "event": name, "payload": payload}
    if seq is not None:
        frame["seq"] = seq
    return frame


async def default_responder(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    """Answer the fake gateway's small method set."""
    method = frame["method"]
    if method == "echo":
        await ws.send_json(res(frame, frame.get("params")))
    elif method == "fail":
        error = {"code": "INVALID_REQUEST", "message": "nope", "details": {"code": "X"}}
        await ws.send_json({"type": "res", "id": frame["id"], "ok": False, "error": error})
    elif method == "agent":
        run = {"runId": "r1"}
        await ws.send_json(res(frame, {**run, "status": "accepted", "acceptedAt": 1}))
        await asyncio.sleep(0.05)
        await ws.send_json(res(frame, {**run, "status": "ok", "summary": "completed"}))
    elif method == "hang":
        pass
    else:
        raise AssertionError(f"unexpected method {method}")


class FakeGateway:
    """A tiny WebSocket server speaking just enough of the handshake."""

    def __init__(self, responder: Responder = default_responder) -> None:
        self.responder = responder
        self.hello = dict(HELLO)
        self.refusal: dict[str, Any] | None = None
        self.challenge_delay = 0.0
        self.connects: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.binary_frames: list[bytes] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.opened = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def ws(self) -> web.WebSocketResponse:
        """Return the most recent authenticated socket."""
        return self.sockets[-1]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close(code=1012, message=b"service restart")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(self.challenge_delay)
        await ws.send_json(event("connect.challenge", {"nonce": "n", "ts": 0}))
        msg = await ws.receive()
        frame = json.loads(msg.data)
        self.connects.append(frame)
        if self.refusal is not None:
            error = self.refusal
            await ws.send_json({"type": "res", "id": frame["id"], "ok": False, "error": error})
            await ws.close(code=1008, message=error["message"].encode())
            return ws
        await ws.send_json(res(frame, self.hello))
        self.sockets.append(ws)
        self.opened.set()
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                self.binary_frames.append(msg.data)
                continue
            frame = json.loads(msg.data)
            self.requests.append(frame)
            await self.responder(ws, frame)
        return ws


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    server = FakeGateway()
    await server.start()
    yield server
    await server.stop()


def fast_backoff() -> Backoff:
    return Backoff(0.01, 0.05)


def client_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("clawgate-client")]


# -- handshake ------------------------------------------------------------------------------


async def test_connect_sends_spec_shaped_params_without_nulls(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url, token="s3cret", client_version="9.9.9") as client:
        assert client.hello == HELLO
        assert client.protocol == 4

    frame = fake.connects[0]
    assert set(frame) == {"type", "id", "method", "params"}
    assert frame["method"] == "connect"
    assert frame["params"]["minProtocol"] == 3
    assert frame["params"]["maxProtocol"] == 4
    assert frame["params"]["client"]["id"] == "gateway-client"
    assert frame["params"]["client"]["mode"] == "backend"
    assert frame["params"]["client"]["version"] == "9.9.9"
    assert "displayName" not in frame["params"]["client"]
    assert frame["params"]["auth"] == {"token": "s3cret"}
    assert frame["params"]["scopes"] == ["operator.admin"]
    assert "caps" not in frame["params"]
    assert "null" not in json.dumps(frame)


async def test_extra_connect_params_are_merged_at_top_level(fake: FakeGateway) -> None:
    extra = {"locale": "en-GB", "userAgent": None}
    async with GatewayClient(fake.url, caps=["tool-events"], extra_connect_params=extra):
        pass

    params = fake.connects[0]["params"]
    assert params["locale"] == "en-GB"
    assert "userAgent" not in params
    assert params["caps"] == ["tool-events"]
    assert "auth" not in params


async def test_connect_waits_for_the_challenge(fake: FakeGateway) -> None:
    fake.challenge_delay = 0.2

    async with GatewayClient(fake.url) as client:
        assert client.connected


async def test_refused_handshake_raises_with_close_code(fake: FakeGateway) -> None:
    fake.refusal = {"code": "NOT_PAIRED", "message": "pairing required", "details": {"code": "P"}}
    client = GatewayClient(fake.url)

    with pytest.raises(GatewayHandshakeError) as info:
        await client.connect()

    assert info.value.code == "NOT_PAIRED"
    assert info.value.detail_code == "P"
    assert info.value.close_code == 1008
    assert info.value.close_reason == "pairing required"
    assert str(info.value) == "NOT_PAIRED: pairing required"
    assert client.state is ClientState.CLOSED
    assert client_tasks() == []


async def test_connection_refused_raises_connection_error(unused_tcp_port: int) -> None:
    client = GatewayClient(f"ws://127.0.0.1:{unused_tcp_port}/", connect_timeout=2)

    with pytest.raises(GatewayConnectionError):
        await client.connect()


async def test_silent_server_times_out_the_handshake(fake: FakeGateway) -> None:
    fake.challenge_delay = 5
    client = GatewayClient(fake.url, connect_timeout=0.2)

    with pytest.raises(GatewayTimeoutError):
        await client.connect()


# -- requests -------------------------------------------------------------------------------


async def test_call_returns_the_payload(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        assert await client.call("echo", {"a": 1}) == {"a": 1}


async def test_request_omits_params_when_none(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        await client.call("echo")

    assert "params" not in fake.requests[0]


async def test_call_raises_on_error_response(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        with pytest.raises(GatewayCallError) as info:
            await client.call("fail")
        response = await client.request("fail")

    assert info.value.code == "INVALID_REQUEST"
    assert info.value.details == {"code": "X"}
    assert not response.ok
    assert response.error is not None and response.error.message == "nope"


async def test_call_times_out(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        with pytest.raises(GatewayTimeoutError):
            await client.call("hang", timeout=0.1)
        with pytest.raises(TimeoutError):
            await client.call("hang", timeout=0.1)
        assert await client.call("echo", 1) == 1  # the connection is still usable


async def test_call_streaming_returns_accepted_then_final(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        accepted, final = await client.call_streaming("agent", {"message": "hi"})
        done = await asyncio.wait_for(final, 2)

    assert accepted["status"] == "accepted"
    assert done.ok and done.payload["status"] == "ok"


async def test_second_response_to_a_plain_call_is_ignored(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        accepted = await client.call("agent", {"message": "hi"})
        await asyncio.sleep(0.1)  # let the second response arrive
        assert accepted["status"] == "accepted"
        assert await client.call("echo", 2) == 2


async def test_pending_call_fails_when_the_server_closes(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        call = asyncio.create_task(client.call("hang", timeout=10))
        await asyncio.sleep(0.05)
        await fake.ws.close(code=1011, message=b"boom")

        with pytest.raises(GatewayConnectionError) as info:
            await asyncio.wait_for(call, 2)

        assert info.value.close_code == 1011
        assert info.value.close_reason == "boom"
        assert client.state is ClientState.CLOSED
        with pytest.raises(GatewayConnectionError):
            await client.call("echo", timeout=1)


async def test_send_raw_bytes_sends_a_binary_frame(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        await client.send_raw(b"\x00\x01")
        await client.call("echo", 1)  # ordered after the binary frame

    assert fake.binary_frames == [b"\x00\x01"]


# -- events ---------------------------------------------------------------------------------


async def test_events_are_delivered_to_every_iterator(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        first, second = client.events(), client.events()
        await fake.ws.send_json(event("tick", {"ts": 1}, seq=1))

        one = await asyncio.wait_for(anext(first), 2)
        two = await asyncio.wait_for(anext(second), 2)

    assert one == two == Event("tick", {"ts": 1}, 1, None)


async def test_seq_gap_is_raised_once_from_the_iterator(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        stream = client.events()
        for seq in (1, 2, 5):
            await fake.ws.send_json(event("tick", {}, seq=seq))

        seen = [(await anext(stream)).seq, (await anext(stream)).seq]
        with pytest.raises(SequenceGapError) as info:
            await asyncio.wait_for(anext(stream), 2)
        after = await asyncio.wait_for(anext(stream), 2)

    assert seen == [1, 2]
    assert (info.value.expected, info.value.got) == (3, 5)
    assert after.seq == 5


async def test_seq_gap_goes_to_on_gap_when_given(fake: FakeGateway) -> None:
    gaps: list[tuple[int, int]] = []
    async with GatewayClient(fake.url, on_gap=lambda e, g: gaps.append((e, g))) as client:
        stream = client.events()
        for seq in (1, 3):
            await fake.ws.send_json(event("tick", {}, seq=seq))
        seqs = [(await anext(stream)).seq, (await anext(stream)).seq]

    assert seqs == [1, 3]
    assert gaps == [(2, 3)]


async def test_events_iteration_ends_on_close(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url)
    await client.connect()
    stream = client.events()

    async def drain() -> list[Event]:
        return [ev async for ev in stream]

    drainer = asyncio.create_task(drain())
    await fake.ws.send_json(event("tick", {}, seq=1))
    await asyncio.sleep(0.05)
    await client.close()

    assert [ev.event for ev in await asyncio.wait_for(drainer, 2)] == ["tick"]


async def test_next_event_matches_name_and_predicate(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        waiter = asyncio.create_task(
            client.next_event("presence", predicate=lambda ev: ev.payload["n"] == 2)
        )
        await asyncio.sleep(0.05)
        await fake.ws.send_json(event("tick", {}, seq=1))
        await fake.ws.send_json(event("presence", {"n": 1}, seq=2))
        await fake.ws.send_json(event("presence", {"n": 2}, seq=3))

        assert (await asyncio.wait_for(waiter, 2)).seq == 3
        with pytest.raises(GatewayTimeoutError):
            await client.next_event("tick", timeout=0.05)


# -- lifecycle and reconnect ----------------------------------------------------------------


async def test_close_leaves_no_tasks_behind(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url, reconnect=True)
    await client.connect()
    assert len(client_tasks()) == 2  # reader + supervisor

    await client.close()
    await client.close()  # idempotent

    assert client_tasks() == []
    assert client.state is ClientState.CLOSED


async def test_reconnects_after_service_restart_and_resets_seq(fake: FakeGateway) -> None:
    hellos: list[dict[str, Any]] = []

    async def on_reconnect(hello: dict[str, Any]) -> None:
        hellos.append(hello)

    client = GatewayClient(
        fake.url, reconnect=True, backoff=fast_backoff(), on_reconnect=on_reconnect
    )
    async with client:
        stream = client.events()
        await fake.ws.send_json(event("tick", {}, seq=1))
        assert (await anext(stream)).seq == 1

        fake.opened.clear()
        await fake.ws.close(code=1012, message=b"service restart")
        await asyncio.wait_for(fake.opened.wait(), 2)
        await fake.ws.send_json(event("tick", {}, seq=1))  # a new connection restarts at 1

        assert (await asyncio.wait_for(anext(stream), 2)).seq == 1
        assert await client.call("echo", 3) == 3
        assert hellos == [HELLO]
        assert client.close_code == 1012


async def test_call_while_reconnecting_waits_for_the_new_connection(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url, reconnect=True, backoff=Backoff(0.3, 0.3, rand=max))
    async with client:
        await fake.ws.close(code=1012, message=b"service restart")
        await asyncio.sleep(0.05)
        assert client.state is ClientState.RECONNECTING

        assert await client.call("echo", 4, timeout=5) == 4


async def test_no_reconnect_after_an_auth_refusal(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url, reconnect=True, backoff=fast_backoff())
    async with client:
        stream = client.events()
        fake.refusal = {
            "code": "INVALID_REQUEST",
            "message": "unauthorized: gateway token mismatch",
            "details": {"code": "AUTH_TOKEN_MISMATCH"},
        }
        await fake.ws.close(code=4001, message=b"gateway auth changed")

        assert [ev async for ev in stream] == []  # ends when the client gives up
        await asyncio.sleep(0.2)
        assert client.state is ClientState.CLOSED
        assert len(fake.connects) == 2  # the original and exactly one refused retry
        assert client.close_code == 1008
        with pytest.raises(GatewayConnectionError):
            await client.call("echo", timeout=1)
        assert client_tasks() == []


async def test_keeps_retrying_while_the_gateway_is_down(unused_tcp_port: int) -> None:
    fake = FakeGateway()
    fake.port = unused_tcp_port
    await fake.start()
    client = GatewayClient(fake.url, reconnect=True, backoff=fast_backoff())
    try:
        await client.connect()
        await fake.stop()
        await asyncio.sleep(0.3)  # several refused attempts
        assert client.state is ClientState.RECONNECTING

        await fake.start()
        assert await client.call("echo", 5, timeout=5) == 5
    finally:
        await client.close()
        await fake.stop()


async def test_silent_gateway_is_closed_with_tick_timeout(fake: FakeGateway) -> None:
    fake.hello = {**HELLO, "policy": {**HELLO["policy"], "tickIntervalMs": 50}}

    async with GatewayClient(fake.url) as client:
        await asyncio.sleep(0.4)

        assert client.state is ClientState.CLOSED
        assert client.close_code == 4000
        assert client.close_reason == "tick timeout"


async def test_close_during_connect_aborts_the_handshake(fake: FakeGateway) -> None:
    fake.challenge_delay = 0.3
    client = GatewayClient(fake.url)
    connecting = asyncio.create_task(client.connect())
    await asyncio.sleep(0.1)

    await client.close()

    with pytest.raises(GatewayConnectionError):
        await asyncio.wait_for(connecting, 2)
    assert client.state is ClientState.CLOSED
    assert client_tasks() == []


# -- against the real gateway (tests/conftest.py: token auth, 200 ms tick) --------------------


async def test_gateway_connect_with_token_negotiates_protocol_4(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        assert client.connected
        assert client.protocol == 4
        assert client.hello is not None
        assert client.hello["type"] == "hello-ok"
        assert client.hello["server"]["bootId"] == gateway.server.boot_id


async def test_gateway_negotiates_protocol_3_when_asked(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token, max_protocol=3) as client:
        assert client.protocol == 3
        assert client.hello is not None
        assert "bootId" not in client.hello["server"]


async def test_gateway_wrong_token_is_a_handshake_error(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token="not-the-token")

    with pytest.raises(GatewayHandshakeError) as info:
        await client.connect()

    assert info.value.code == "INVALID_REQUEST"
    assert info.value.detail_code == "AUTH_TOKEN_MISMATCH"
    assert info.value.close_code == 1008
    assert "not-the-token" not in str(info.value)
    assert client.close_code == 1008


async def test_gateway_protocol_mismatch_closes_1002(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token=gateway.token, min_protocol=5, max_protocol=9)

    with pytest.raises(GatewayHandshakeError) as info:
        await client.connect()

    assert info.value.detail_code == "PROTOCOL_MISMATCH"
    assert info.value.close_code == 1002


async def test_gateway_health_call_returns_summary(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        health = await client.call("health")

    assert isinstance(health, dict)
    assert health["ok"] is True


async def test_gateway_unknown_method_is_invalid_request(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        with pytest.raises(GatewayCallError) as info:
            await client.call("no.such.method")
        assert client.connected  # the socket stays open

    assert info.value.code == "INVALID_REQUEST"
    assert "no.such.method" in info.value.message


async def test_gateway_non_json_frame_is_answered_and_ignored(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        await client.send_raw("this is not json")  # answered with id "invalid"
        assert (await client.call("health"))["ok"] is True


async def test_gateway_ticks_arrive_with_consecutive_seq(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token=gateway.token, client_mode="cli", client_id="cli")
    stream = client.events()  # created first, so it sees the connection's first event
    async with client:
        seen: list[Event] = []
        async with asyncio.timeout(5):
            async for ev in stream:
                seen.append(ev)
                if sum(ev.event == "tick" for ev in seen) == 3:
                    break

    assert [ev.seq for ev in seen] == list(range(1, len(seen) + 1))
    ticks = [ev for ev in seen if ev.event == "tick"]
    assert all(isinstance(ev.payload["ts"], int) for ev in ticks)


async def test_gateway_presence_event_when_another_client_connects(
    gateway: RunningGateway,
) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as watcher:
        waiter = asyncio.create_task(
            watcher.next_event(
                "presence",
                predicate=lambda ev: any(
                    entry.get("instanceId") == "second" for entry in ev.payload["presence"]
                ),
            )
        )
        await asyncio.sleep(0)
        async with GatewayClient(gateway.url, token=gateway.token, instance_id="second"):
            presence = await waiter

    assert presence.seq is not None
    assert presence.state_version is not None and presence.state_version["presence"] >= 1


async def test_gateway_pending_call_fails_when_the_server_closes(
    gateway_factory: GatewayFactory,
) -> None:
    # An oversized request makes the server close with 1009 instead of answering it.
    small = await gateway_factory(limits=Limits(tick_interval_ms=200, max_payload=128 * 1024))
    async with GatewayClient(small.url, token=small.token) as client:
        with pytest.raises(GatewayConnectionError) as info:
            await client.call("health", {"probe": "x" * 200_000}, timeout=5)

        assert info.value.close_code == 1009
        assert client.state is ClientState.CLOSED
        assert client.close_code == 1009


async def test_gateway_binary_frame_closes_1003(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        waiter = asyncio.create_task(client.call("health", timeout=5))
        await client.send_raw(b"\x00")
        with contextlib.suppress(GatewayConnectionError):
            await waiter  # may be answered before the close, or fail with it
        async with asyncio.timeout(2):
            while client.connected:
                await asyncio.sleep(0.01)

        assert client.close_code == 1003


async def test_gateway_restart_is_survived_by_reconnect(gateway: RunningGateway) -> None:
    hellos: list[dict[str, Any]] = []
    reconnected = asyncio.Event()

    def on_reconnect(hello: dict[str, Any]) -> None:
        hellos.append(hello)
        reconnected.set()

    client = GatewayClient(
        gateway.url,
        token=gateway.token,
        reconnect=True,
        backoff=fast_backoff(),
        on_reconnect=on_reconnect,
    )
    async with client:
        old_boot = gateway.server.boot_id
        stream = client.events()
        await gateway.restart()
        await asyncio.wait_for(reconnected.wait(), 10)

        assert hellos[0]["server"]["bootId"] == gateway.server.boot_id != old_boot
        assert (await client.call("health"))["ok"] is True
        seen: list[Event] = []
        async with asyncio.timeout(5):
            async for ev in stream:  # a SequenceGapError here would fail the test
                seen.append(ev)
                names = [e.event for e in seen]
                if "shutdown" in names and len(seen) - names.index("shutdown") == 3:
                    break

    at = [ev.event for ev in seen].index("shutdown")
    assert seen[at].payload == {"reason": "gateway restarting", "restartExpectedMs": 1000}
    assert [ev.seq for ev in seen[at + 1 :]] == [1, 2]  # the new connection starts again at 1
    assert client.close_code == 1000  # set by our own close() at the end


async def test_gateway_call_during_restart_waits_for_reconnect(gateway: RunningGateway) -> None:
    # A fixed 0.3 s reconnect delay keeps the client visibly disconnected for a while.
    backoff = Backoff(0.3, 0.3, rand=max)
    client = GatewayClient(gateway.url, token=gateway.token, reconnect=True, backoff=backoff)
    async with client:
        restart = asyncio.create_task(gateway.restart())
        async with asyncio.timeout(5):
            while client.state is not ClientState.RECONNECTING:
                await asyncio.sleep(0.01)

        health = await client.call("health", timeout=10)
        await restart

    assert health["ok"] is True


async def test_gateway_no_reconnect_storm_after_token_change(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token=gateway.token, reconnect=True, backoff=fast_backoff())
    async with client:
        port = gateway.server.port
        await gateway.server.stop()
        auth = SharedSecretAuth(AuthMode.TOKEN, "a-different-token")
        gateway.server = GatewayServer(replace(gateway.server.settings, port=port, auth=auth))
        await gateway.server.start()
        async with asyncio.timeout(10):
            while client.state is not ClientState.CLOSED:
                await asyncio.sleep(0.02)

        assert client.close_code == 1008
        with pytest.raises(GatewayConnectionError, match="reconnect gave up"):
            await client.call("health", timeout=1)
