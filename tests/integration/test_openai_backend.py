"""The OpenAI-compatible backend against a local server speaking the streaming API."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from clawgate.config import AgentSection, OpenAISection
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.chat_helpers import admin_peer, chat_events
from tests.integration.conftest import PeerFactory

KEY_ENV = "CLAWGATE_TEST_OPENAI_KEY"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(api_key="sk-" + secrets.token_hex(16))
    await server.start()
    monkeypatch.setenv(KEY_ENV, server.api_key)
    yield server
    await server.stop()


async def start(factory: GatewayFactory, fake: FakeOpenAI, **openai: object) -> RunningGateway:
    settings = OpenAISection(
        base_url=fake.base_url,
        model="fake-model",
        api_key_env=KEY_ENV,
        retry_backoff_ms=10,
        **openai,  # type: ignore[arg-type]
    )
    return await factory(agent=AgentSection(backend="openai", openai=settings))  # type: ignore[arg-type]


async def test_streams_the_reply_and_sends_the_history(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, fake: FakeOpenAI
) -> None:
    gateway = await start(gateway_factory, fake, system_prompt="Be kind.")
    peer = await admin_peer(client_factory, gateway)
    for run_id, text in (("o1", "first question"), ("o2", "second question")):
        await peer.client.call(
            "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": run_id}
        )
        events = await chat_events(peer, run_id)
        assert events[-1]["state"] == "final"
        assert events[-1]["message"]["content"][0]["text"] == fake.reply
        assert events[-1]["stopReason"] == "stop"
    assert fake.requests[-1]["stream"] is True and fake.requests[-1]["model"] == "fake-model"
    assert fake.requests[-1]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": fake.reply},
        {"role": "user", "content": "second question"},
    ]


async def test_429_and_500_are_retried_before_the_first_token(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, fake: FakeOpenAI
) -> None:
    gateway = await start(gateway_factory, fake, max_retries=2)
    peer = await admin_peer(client_factory, gateway)
    fake.script.extend(["429", "500"])
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "r"}
    )
    events = await chat_events(peer, "r")
    assert events[-1]["state"] == "final" and len(fake.requests) == 3


async def test_retries_run_out_into_a_readable_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, fake: FakeOpenAI
) -> None:
    gateway = await start(gateway_factory, fake, max_retries=1)
    peer = await admin_peer(client_factory, gateway)
    fake.script.extend(["429", "429"])
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "r"}
    )
    events = await chat_events(peer, "r")
    assert events[-1]["state"] == "error" and events[-1]["errorKind"] == "rate_limit"
    assert "HTTP 429" in events[-1]["errorMessage"]


async def test_mid_stream_failure_ends_the_run_with_an_error_and_no_retry(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, fake: FakeOpenAI
) -> None:
    gateway = await start(gateway_factory, fake)
    peer = await admin_peer(client_factory, gateway)
    fake.script.append("drop")
    _, final = await peer.client.call_streaming("agent", {"message": "hi", "idempotencyKey": "d"})
    response = await final
    assert response.error is not None and response.error.code == "UNAVAILABLE"
    assert "middle of the answer" in response.error.message
    assert len(fake.requests) == 1


async def test_bad_api_key_is_a_readable_run_error_without_the_key(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "sk-wrong-" + secrets.token_hex(8)
    monkeypatch.setenv(KEY_ENV, wrong)
    gateway = await start(gateway_factory, fake)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "k"}
    )
    events = await chat_events(peer, "k")
    assert events[-1]["state"] == "error"
    assert "refused the api key (HTTP 401)" in events[-1]["errorMessage"]
    assert KEY_ENV in events[-1]["errorMessage"]
    log = (gateway.home / "logs").glob("*")
    for path in [*log, gateway.home / "state.db"]:
        if path.is_file():
            assert wrong.encode() not in path.read_bytes()
            assert fake.api_key.encode() not in path.read_bytes()


async def test_missing_key_variable_and_abort_closes_the_stream(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.chunk_delay_s = 0.2
    fake.reply = " ".join(f"w{i}" for i in range(50))
    gateway = await start(gateway_factory, fake)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "go", "idempotencyKey": "a"}
    )
    await peer.next_event("chat")
    await peer.client.call("chat.abort", {"sessionKey": "main"})
    events = await chat_events(peer, "a")
    assert events[-1]["state"] == "aborted"
    async with asyncio.timeout(5):
        await fake.cancelled.wait()  # the server saw the client go away
    monkeypatch.delenv(KEY_ENV)
    other = await start(gateway_factory, fake)
    peer2 = await admin_peer(client_factory, other)
    await peer2.client.call(
        "chat.send", {"sessionKey": "main", "message": "x", "idempotencyKey": "m"}
    )
    events = await chat_events(peer2, "m")
    assert f"{KEY_ENV} holding the api key is not set" in events[-1]["errorMessage"]
