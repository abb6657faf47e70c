"""The OpenAI-compatible endpoints over real sockets, driven by the official `openai` client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from clawgate.client import GatewayClient, load_or_create_identity
from clawgate.config import AgentSection
from tests.conftest import GatewayFactory
from tests.integration.chat_helpers import admin_peer, chat_events
from tests.integration.conftest import PeerFactory
from tests.integration.openai_helpers import openai_client, openai_gateway, openai_post

MODEL = "clawgate:main"


def _text_of(content: Any) -> str:
    return "".join(part["text"] for part in content)


async def test_models_lists_each_agent_as_clawgate_model(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await openai_gateway(gateway_factory)
    models = await openai_client(gateway).models.list()
    assert [model.id for model in models.data] == [MODEL]
    assert models.data[0].object == "model" and models.data[0].owned_by == "clawgate"
    assert (await openai_client(gateway).models.retrieve(MODEL)).id == MODEL
    # The WebSocket API lists the same agents, and the model each one uses.
    peer = await client_factory(gateway, scopes=["operator.read"])
    agents = await peer.client.call("agents.list")
    assert agents["defaultId"] == "main"
    assert ["clawgate:" + agent["id"] for agent in agents["agents"]] == [MODEL]
    primary = agents["agents"][0]["model"]["primary"]
    listed = await peer.client.call("models.list")
    assert [f"{m['provider']}/{m['id']}" for m in listed["models"]] == [primary]
    assert listed["models"][0]["alias"] == MODEL


async def test_non_streaming_completion_is_an_agent_run_operators_see(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await openai_gateway(gateway_factory)
    peer = await admin_peer(client_factory, gateway)
    raw = await openai_client(gateway).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello over http"}]
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "hello over http"
    assert completion.choices[0].finish_reason == "stop"
    run_id = raw.headers["x-clawgate-run-id"]
    events = await chat_events(peer, run_id)
    assert events[-1]["state"] == "final"
    assert _text_of(events[-1]["message"]["content"]) == "hello over http"


async def test_model_may_be_omitted(gateway_factory: GatewayFactory) -> None:
    gateway = await openai_gateway(gateway_factory)
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            gateway.http_url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "no model"}]},
            headers={"Authorization": f"Bearer {gateway.token}"},
        )
        body = await response.json()
    assert response.status == 200 and body["model"] == MODEL
    assert body["choices"][0]["message"]["content"] == "no model"


async def test_streaming_completion_yields_the_answer_in_chunks(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await openai_gateway(gateway_factory)
    stream = await openai_client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


async def test_responses_api_answers_with_and_without_streaming(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await openai_gateway(gateway_factory)
    client = openai_client(gateway)
    response = await client.responses.create(model=MODEL, input="plain text in")
    assert response.status == "completed" and response.output_text == "plain text in"
    stream = await client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "streamed text out"}], stream=True
    )
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "streamed text out"
    assert events[-1].response.output_text == "streamed text out"
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_user_field_keeps_one_session_across_calls(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await openai_gateway(gateway_factory)
    client = openai_client(gateway)
    for text in ("first", "second"):
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], user="alice"
        )
    peer = await admin_peer(client_factory, gateway)
    history = await peer.client.call("chat.history", {"sessionKey": "openai-user:alice"})
    assert [_text_of(m["content"]) for m in history["messages"]] == [
        "first",
        "first",
        "second",
        "second",
    ]


async def test_session_header_names_the_session_and_a_new_one_is_seeded(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await openai_gateway(gateway_factory)
    client = openai_client(gateway)
    messages = [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "now this"},
    ]
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, extra_headers={"x-clawgate-session": "work"}
    )
    assert raw.headers["x-clawgate-session"] == "agent:main:work"
    peer = await admin_peer(client_factory, gateway)
    history = await peer.client.call("chat.history", {"sessionKey": "work"})
    assert [(m["role"], _text_of(m["content"])) for m in history["messages"]] == [
        ("system", "be terse"),
        ("user", "earlier question"),
        ("assistant", "earlier answer"),
        ("user", "now this"),
        ("assistant", "now this"),
    ]
    # A request without a session gets a fresh one each time.
    one = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}]
    )
    two = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}]
    )
    assert one.headers["x-clawgate-session"] != two.headers["x-clawgate-session"]


def _split_sse(body: bytes) -> list[bytes]:
    """Split a raw SSE body into events, checking each ends with exactly one blank line."""
    assert body.endswith(b"\n\n")
    events = body[:-2].split(b"\n\n")
    assert all(event and b"\n" not in event for event in events), body
    return events


async def test_sse_framing_byte_by_byte(gateway_factory: GatewayFactory) -> None:
    gateway = await openai_gateway(gateway_factory)
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            gateway.http_url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "a b"}], "stream": True},
            headers={"Authorization": f"Bearer {gateway.token}"},
        )
        body = await response.read()
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    events = _split_sse(body)
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert all(event.startswith(b"data: {") for event in events[:-1])
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
        {"content": " b"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]
    completion_id = chunks[0]["id"]
    assert all(c["id"] == completion_id and c["object"] == "chat.completion.chunk" for c in chunks)


async def test_responses_sse_framing_byte_by_byte(gateway_factory: GatewayFactory) -> None:
    gateway = await openai_gateway(gateway_factory)
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            gateway.http_url + "/v1/responses",
            json={"model": MODEL, "input": "x", "stream": True},
            headers={"Authorization": f"Bearer {gateway.token}"},
        )
        body = await response.read()
    for block in body[:-2].split(b"\n\n"):
        event, data = block.split(b"\n")
        kind = event.removeprefix(b"event: ").decode()
        assert orjson.loads(data.removeprefix(b"data: "))["type"] == kind
    assert b"[DONE]" not in body


def _is_openai_error(body: Any) -> bool:
    return set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"{not json", 400, None),
        (
            b'{"model": "clawgate:nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
        ),
        (b'{"model": "clawgate:main"}', 400, "missing_required_parameter"),
        (b"[1, 2]", 400, "invalid_type"),
    ],
)
async def test_bad_requests_get_openais_error_shape(
    gateway_factory: GatewayFactory, data: bytes, status: int, code: str | None
) -> None:
    gateway = await openai_gateway(gateway_factory)
    got, _, body = await openai_post(gateway, "/v1/chat/completions", data, gateway.token)
    assert got == status and _is_openai_error(body)
    assert body["error"]["code"] == code


async def test_over_long_body_gets_413(gateway_factory: GatewayFactory) -> None:
    gateway = await openai_gateway(gateway_factory)
    big = orjson.dumps({"messages": [{"role": "user", "content": "x" * (1024 * 1024)}]})
    status, _, body = await openai_post(gateway, "/v1/chat/completions", big, gateway.token)
    assert status == 413 and _is_openai_error(body)
    assert body["error"]["code"] == "request_too_large"

    # The same with chunked transfer encoding (no Content-Length to trust).
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gateway.http_url + "/v1/responses",
            data=chunks(),
            headers={"Authorization": f"Bearer {gateway.token}"},
        ) as response,
    ):
        assert response.status == 413 and _is_openai_error(await response.json())


async def test_missing_and_wrong_credentials_get_401_in_openais_shape(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await openai_gateway(gateway_factory)
    data = b'{"messages": [{"role": "user", "content": "x"}]}'
    status, _, body = await openai_post(gateway, "/v1/chat/completions", data)
    assert status == 401 and _is_openai_error(body)
    status, _, body = await openai_post(gateway, "/v1/chat/completions", data, "not-the-token")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert "not-the-token" not in body["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        await openai_client(gateway, api_key="wrong").models.list()


async def test_device_token_needs_operator_write(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    gateway = await openai_gateway(gateway_factory)
    tokens = {}
    for scope in ("operator.write", "operator.read"):
        identity = load_or_create_identity(tmp_path / scope)
        async with GatewayClient(
            gateway.url, token=gateway.token, identity=identity, scopes=[scope]
        ) as client:
            assert client.hello is not None
            tokens[scope] = client.hello["auth"]["deviceToken"]
    reply = await openai_client(gateway, tokens["operator.write"]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "as a device"}]
    )
    assert reply.choices[0].message.content == "as a device"
    with pytest.raises(openai.AuthenticationError) as caught:
        await openai_client(gateway, tokens["operator.read"]).models.list()
    assert caught.value.code == "insufficient_permissions"


async def test_disabled_endpoints_answer_404(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(agent=AgentSection(echo_delay_ms=0))
    async with aiohttp.ClientSession() as http:
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
            headers = {"Authorization": f"Bearer {gateway.token}"}
            async with http.request(method, gateway.http_url + path, headers=headers) as answer:
                assert answer.status == 404


async def test_fifty_concurrent_streams_each_get_their_own_complete_stream(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await openai_gateway(gateway_factory, agent=AgentSection(echo_delay_ms=1))
    client = openai_client(gateway)

    async def one(index: int) -> tuple[str, str, str | None]:
        words = " ".join(f"s{index}w{word}" for word in range(20))
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": words}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        return words, text, chunks[-1].choices[0].finish_reason

    results = await asyncio.gather(*(one(index) for index in range(50)))
    for words, text, finish in results:
        assert text == words and finish == "stop"


async def test_a_client_that_leaves_mid_stream_aborts_its_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await openai_gateway(gateway_factory, agent=AgentSection(echo_delay_ms=50))
    peer = await admin_peer(client_factory, gateway)
    words = " ".join(f"w{i}" for i in range(200))
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            gateway.http_url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": words}], "stream": True},
            headers={"Authorization": f"Bearer {gateway.token}"},
        )
        run_id = response.headers["x-clawgate-run-id"]
        await response.content.readuntil(b"\n\n")
        response.close()
    events = await chat_events(peer, run_id)
    assert events[-1]["state"] == "aborted"
