"""Webhooks over real sockets: every route with good and bad credentials, signatures, limits."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import orjson
import pytest

from clawgate.client import GatewayClient, GatewayHandshakeError
from clawgate.config import AgentSection, HookMappingSection, HooksSection
from clawgate.protocol.hooks import EXTERNAL_BEGIN, sign
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.chat_helpers import admin_peer
from tests.integration.conftest import PeerFactory

HOOK_TOKEN = "hooks-" + secrets.token_urlsafe(24)
GITHUB_SECRET = "gh-" + secrets.token_urlsafe(24)
PUSH = {
    "ref": "refs/heads/main",
    "repository": {"full_name": "octo/repo"},
    "head_commit": {"message": "Fix the bug"},
}
MAPPINGS = {
    "github": HookMappingSection(
        template="Push to {{repository.full_name}} ({{ref}}): {{head_commit.message}}",
        secret_env="GITHUB_HOOK_SECRET",
        idempotency_header="X-GitHub-Delivery",
    ),
    "mail": HookMappingSection(template="Mail from {{from}}: {{subject}}"),
    "office": HookMappingSection(template="{{x}}", allow_from=["10.0.0.0/8"]),
}


async def hooks_gateway(factory: GatewayFactory, **overrides: Any) -> RunningGateway:
    """Start a gateway with webhooks on, a fast echo agent and the mappings above."""
    section = {"enabled": True, "token": HOOK_TOKEN, "mappings": MAPPINGS}
    section.update(overrides.pop("hooks", {}))
    overrides.setdefault("agent", AgentSection(echo_delay_ms=0))
    return await factory(
        hooks=HooksSection(**section), hook_secrets={"github": GITHUB_SECRET}, **overrides
    )


async def post(
    gateway: RunningGateway,
    path: str,
    body: Any = None,
    *,
    token: str | None = HOOK_TOKEN,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    sent = dict(headers or {})
    if token is not None:
        sent.setdefault("Authorization", f"Bearer {token}")
    data = raw if raw is not None else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(gateway.http_url + path, data=data, headers=sent) as response,
    ):
        if response.content_type != "application/json":
            return response.status, dict(response.headers), await response.text()
        return response.status, dict(response.headers), await response.json()


def error_code(body: Any) -> str:
    assert body["ok"] is False and set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


async def test_agent_hook_starts_a_run_agent_wait_can_follow(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, body = await post(gateway, "/hooks/agent", {"message": "deploy finished"})
    assert status == 202 and body["ok"] is True
    peer = await admin_peer(client_factory, gateway)
    waited = await peer.client.call("agent.wait", {"runId": body["runId"], "timeoutMs": 5000})
    assert waited["status"] == "ok"
    history = await peer.client.call("chat.history", {"sessionKey": "hook:agent"})
    user = history["messages"][0]["content"][0]["text"]
    assert user.startswith(EXTERNAL_BEGIN) and "deploy finished" in user


async def test_agent_hook_takes_the_token_in_either_header(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, _ = await post(
        gateway,
        "/hooks/agent",
        {"message": "x"},
        token=None,
        headers={"x-clawgate-token": HOOK_TOKEN},
    )
    assert status == 202


@pytest.mark.parametrize("path", ["/hooks/wake", "/hooks/agent", "/hooks/mail", "/hooks/nope"])
async def test_missing_and_wrong_tokens_get_401(gateway_factory: GatewayFactory, path: str) -> None:
    gateway = await hooks_gateway(gateway_factory)
    body = {"text": "x", "message": "x"} if path in ("/hooks/wake", "/hooks/agent") else {}
    for token in (None, "wrong-token"):
        status, _, answer = await post(gateway, path, body, token=token)
        assert status == 401 and error_code(answer) == "UNAUTHORIZED"
        assert "wrong-token" not in answer["error"]["message"]


async def test_the_gateway_token_is_not_a_hook_token(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, _ = await post(gateway, "/hooks/agent", {"message": "x"}, token=gateway.token)
    assert status == 401


async def test_query_string_token_is_refused_with_400(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, body = await post(gateway, f"/hooks/agent?token={HOOK_TOKEN}", {"message": "x"})
    assert status == 400 and error_code(body) == "QUERY_TOKEN_REFUSED"
    assert "query string" in body["error"]["message"]


async def test_wake_queues_an_untrusted_system_event(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    peer = await admin_peer(client_factory, gateway)
    status, _, body = await post(
        gateway, "/hooks/wake", {"text": "new mail", "mode": "next-heartbeat"}
    )
    assert (status, body) == (200, {"ok": True})
    queued = (await peer.client.call("status"))["queuedSystemEvents"]
    texts = [event if isinstance(event, str) else event["text"] for event in queued]
    assert any("new mail" in text and text.startswith(EXTERNAL_BEGIN) for text in texts)
    status, _, _ = await post(gateway, "/hooks/wake", {"text": "now please"})
    assert status == 200
    beat = await peer.next_event("heartbeat")  # mode "now" runs a heartbeat at once
    assert beat.payload["status"] == "sent"
    # The beat's agent turn consumed both events, each still marked as untrusted.
    assert (await peer.client.call("status"))["queuedSystemEvents"] == []
    history = await peer.client.call("chat.history", {"sessionKey": "heartbeat"})
    prompt = history["messages"][0]["content"][0]["text"]
    assert f"- {EXTERNAL_BEGIN}" in prompt and "new mail" in prompt and "now please" in prompt


async def test_wake_retried_with_the_same_key_queues_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    headers = {"Idempotency-Key": "wake-1"}
    for _ in range(2):
        status, _, _ = await post(
            gateway, "/hooks/wake", {"text": "once", "mode": "next-heartbeat"}, headers=headers
        )
        assert status == 200
    peer = await admin_peer(client_factory, gateway)
    queued = (await peer.client.call("status"))["queuedSystemEvents"]
    assert sum("once" in str(event) for event in queued) == 1


async def test_agent_hook_retried_with_the_same_key_gets_the_same_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    body = {"message": "only once", "idempotencyKey": "delivery-7", "sessionKey": "ops"}
    answers = [await post(gateway, "/hooks/agent", body) for _ in range(2)]
    assert [a[2]["runId"] for a in answers] == ["delivery-7", "delivery-7"]
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call("agent.wait", {"runId": "delivery-7", "timeoutMs": 5000})
    history = await peer.client.call("chat.history", {"sessionKey": "ops"})
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]


async def test_signed_mapped_hook_renders_its_template(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    raw = orjson.dumps(PUSH)
    headers = {"X-Hub-Signature-256": sign(GITHUB_SECRET, raw), "X-GitHub-Delivery": "d-1"}
    # GitHub sends no token: the signature is the credential.
    status, _, body = await post(gateway, "/hooks/github", raw=raw, token=None, headers=headers)
    assert status == 202 and body["runId"] == "d-1"
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call("agent.wait", {"runId": "d-1", "timeoutMs": 5000})
    history = await peer.client.call("chat.history", {"sessionKey": "hook:github"})
    text = history["messages"][0]["content"][0]["text"]
    assert "Push to octo/repo (refs/heads/main): Fix the bug" in text
    assert text.startswith(EXTERNAL_BEGIN)
    # The same delivery again (a replay, or GitHub's retry) finds the same run.
    status, _, again = await post(gateway, "/hooks/github", raw=raw, token=None, headers=headers)
    assert status == 202 and again["runId"] == "d-1"
    history = await peer.client.call("chat.history", {"sessionKey": "hook:github"})
    assert len(history["messages"]) == 2


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "garbage"])
async def test_bad_or_missing_signature_gets_401(
    gateway_factory: GatewayFactory, signature: str | None
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    headers = {} if signature is None else {"X-Hub-Signature-256": signature}
    status, _, body = await post(
        gateway, "/hooks/github", raw=orjson.dumps(PUSH), token=HOOK_TOKEN, headers=headers
    )
    assert status == 401 and error_code(body) == "UNAUTHORIZED"


async def test_signature_over_another_body_is_refused(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory)
    headers = {"X-Hub-Signature-256": sign(GITHUB_SECRET, orjson.dumps(PUSH))}
    tampered = orjson.dumps({**PUSH, "ref": "refs/heads/evil"})
    status, _, _ = await post(gateway, "/hooks/github", raw=tampered, token=None, headers=headers)
    assert status == 401


async def test_mapped_hook_without_secret_uses_the_token(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, body = await post(gateway, "/hooks/mail", {"from": "a@b", "subject": "hi"})
    assert status == 202 and body["runId"]


async def test_unknown_hook_is_404_only_for_the_token_holder(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, body = await post(gateway, "/hooks/nope", {})
    assert status == 404 and error_code(body) == "NOT_FOUND"


async def test_allow_list_refuses_other_sources(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, body = await post(gateway, "/hooks/office", {"x": "y"})
    assert status == 403 and error_code(body) == "FORBIDDEN"


async def test_oversized_body_gets_413(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory)
    big = {"message": "x" * (256 * 1024)}
    status, _, body = await post(gateway, "/hooks/agent", big)
    assert status == 413 and error_code(body) == "PAYLOAD_TOO_LARGE"
    raw = orjson.dumps({**PUSH, "pad": "x" * (256 * 1024)})
    headers = {"X-Hub-Signature-256": sign(GITHUB_SECRET, raw)}
    status, _, _ = await post(gateway, "/hooks/github", raw=raw, token=None, headers=headers)
    assert status == 413


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/hooks/agent", b"{bad json"),
        ("/hooks/agent", b'{"message": ""}'),
        ("/hooks/agent", b'{"message": "x", "unknown": 1}'),
        ("/hooks/agent", b'{"message": "x", "agentId": "other"}'),
        ("/hooks/wake", b'{"text": "x", "mode": "later"}'),
        ("/hooks/mail", b"[1, 2]"),
    ],
)
async def test_bad_bodies_get_400(gateway_factory: GatewayFactory, path: str, raw: bytes) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, body = await post(gateway, path, raw=raw)
    assert status == 400 and error_code(body) in ("INVALID_REQUEST", "NOT_LINKED")


async def test_deliver_to_a_channel_that_is_not_configured_is_refused(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    body = {"message": "x", "deliver": True, "channel": "telegram", "to": "42"}
    status, _, answer = await post(gateway, "/hooks/agent", body)
    assert status == 400 and error_code(answer) == "NOT_LINKED"
    assert "webchat" in answer["error"]["message"]


async def test_deliver_sends_the_reply_to_the_main_chat_once_per_idempotency_key(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    body = {"message": "build is green", "deliver": True, "idempotencyKey": "deliver-1"}
    for _ in range(2):  # the retry finds the same run and delivers nothing more
        status, _, answer = await post(gateway, "/hooks/agent", body)
        assert status == 202 and answer["runId"] == "deliver-1"
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call("agent.wait", {"runId": "deliver-1", "timeoutMs": 5000})
    async with asyncio.timeout(10):
        while True:
            history = await peer.client.call("chat.history", {"sessionKey": "main"})
            if history["messages"]:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # a second delivery, were there one, would have landed by now
    history = await peer.client.call("chat.history", {"sessionKey": "main"})
    [message] = history["messages"]
    assert message["role"] == "assistant" and "build is green" in message["content"][0]["text"]


async def test_per_token_rate_limit_answers_429_with_retry_after(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await hooks_gateway(gateway_factory, hooks={"rate_limit_per_minute": 2})
    statuses = []
    for _ in range(3):
        status, headers, body = await post(gateway, "/hooks/agent", {"message": "x"})
        statuses.append(status)
    assert statuses == [202, 202, 429]
    assert error_code(body) == "RATE_LIMITED" and int(headers["Retry-After"]) == 30


async def test_disabled_hooks_answer_404_not_401(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(agent=AgentSection(echo_delay_ms=0))
    for path in ("/hooks/wake", "/hooks/agent", "/hooks/github"):
        async with (
            aiohttp.ClientSession() as http,
            http.post(gateway.http_url + path, json={"text": "x"}) as response,
        ):
            assert response.status == 404


async def test_hooks_serve_under_the_configured_path(gateway_factory: GatewayFactory) -> None:
    gateway = await hooks_gateway(gateway_factory, hooks={"path": "/in/hooks"})
    status, _, _ = await post(gateway, "/in/hooks/agent", {"message": "x"})
    assert status == 202
    status, _, _ = await post(gateway, "/hooks/agent", {"message": "x"})
    assert status == 404


async def test_hook_credentials_open_nothing_else(gateway_factory: GatewayFactory) -> None:
    from clawgate.config import OpenAIHttpSection

    gateway = await hooks_gateway(gateway_factory, openai_http=OpenAIHttpSection(enabled=True))
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            gateway.http_url + "/v1/models", headers={"Authorization": f"Bearer {HOOK_TOKEN}"}
        ) as response,
    ):
        assert response.status == 401
    with pytest.raises(GatewayHandshakeError):
        async with GatewayClient(gateway.url, token=HOOK_TOKEN):
            pass


async def test_secrets_never_reach_the_log_or_the_database(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    gateway = await hooks_gateway(gateway_factory)
    raw = orjson.dumps(PUSH)
    await post(gateway, f"/hooks/agent?token={HOOK_TOKEN}", {"message": "x"})
    await post(gateway, "/hooks/agent", {"message": "logged?"})
    await post(gateway, "/hooks/agent", {"message": "x"}, token=HOOK_TOKEN + "x")
    headers = {"X-Hub-Signature-256": sign(GITHUB_SECRET, raw)}
    await post(gateway, "/hooks/github", raw=raw, token=None, headers=headers)
    await gateway.server.stop()
    stored = b"".join(path.read_bytes() for path in gateway.home.glob("state.db*"))
    for secret in (HOOK_TOKEN, GITHUB_SECRET, gateway.token):
        assert secret not in caplog.text
        assert secret.encode() not in stored
