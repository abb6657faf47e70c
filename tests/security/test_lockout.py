"""Brute force is throttled per address and per device on every surface, loopback too (§5.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from clawgate.client import GatewayClient, GatewayHandshakeError
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.device_auth import DeviceIdentity
from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.openai_helpers import openai_gateway, openai_post
from tests.integration.test_hooks_http import error_code, hooks_gateway, post
from tests.wire import connect_params, open_peer, request, signed_connect_params

PASSWORD = "correct horse battery staple"


async def _password_connect(
    session: aiohttp.ClientSession, gateway: RunningGateway, password: str, **headers: str
) -> dict[str, Any]:
    peer = await open_peer(session, gateway.url, **headers)
    params = connect_params(None, auth={"password": password})
    await peer.send(request("connect", params, "c"))
    answer = await peer.response("c", timeout=30)
    await peer.ws.close()
    return answer


def _code(answer: dict[str, Any]) -> str | None:
    return None if answer["ok"] else answer["error"]["details"]["code"]


async def _password_gateway(factory: GatewayFactory, lockout_ms: int = 60_000) -> RunningGateway:
    limits = Limits(auth_lockout_ms=lockout_ms, tick_interval_ms=60_000)
    return await factory(auth=SharedSecretAuth(AuthMode.PASSWORD, PASSWORD), limits=limits)


async def test_ten_wrong_passwords_lock_loopback_out_even_for_the_right_one(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gateway = await _password_gateway(gateway_factory)
    for attempt in range(10):
        answer = await _password_connect(session, gateway, f"guess-{attempt}")
        assert _code(answer) == "AUTH_PASSWORD_MISMATCH"
    locked = await _password_connect(session, gateway, PASSWORD)
    assert _code(locked) == "AUTH_RATE_LIMITED"
    assert locked["error"]["retryable"] is True
    assert 0 < locked["error"]["retryAfterMs"] <= 60_000


async def test_the_right_password_works_once_the_lockout_is_over(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gateway = await _password_gateway(gateway_factory, lockout_ms=1_000)
    for attempt in range(10):
        await _password_connect(session, gateway, f"guess-{attempt}")
    locked = await _password_connect(session, gateway, PASSWORD)
    assert _code(locked) == "AUTH_RATE_LIMITED"
    await asyncio.sleep(locked["error"]["retryAfterMs"] / 1000 + 0.1)
    assert (await _password_connect(session, gateway, PASSWORD))["ok"] is True


async def test_parallel_guesses_get_no_more_than_ten_answers(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gateway = await _password_gateway(gateway_factory)
    answers = await asyncio.gather(
        *(_password_connect(session, gateway, f"guess-{n}") for n in range(30))
    )
    codes = [_code(answer) for answer in answers]
    assert codes.count("AUTH_PASSWORD_MISMATCH") == 10
    assert codes.count("AUTH_RATE_LIMITED") == 20


async def test_a_device_token_sent_along_does_not_buy_more_guesses(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gateway = await _password_gateway(gateway_factory)
    for attempt in range(10):
        peer = await open_peer(session, gateway.url)
        auth = {"password": f"guess-{attempt}", "deviceToken": "not-a-token"}
        await peer.send(request("connect", connect_params(None, auth=auth), "c"))
        await peer.response("c", timeout=30)
        await peer.ws.close()
    assert _code(await _password_connect(session, gateway, PASSWORD)) == "AUTH_RATE_LIMITED"


async def test_cli_failures_lock_out_browsers_and_the_cli_alike(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gateway = await _password_gateway(gateway_factory)
    for attempt in range(10):
        await _password_connect(session, gateway, f"guess-{attempt}")
    browser = await _password_connect(session, gateway, PASSWORD, Origin="http://127.0.0.1:5173")
    cli = await _password_connect(session, gateway, PASSWORD)
    assert _code(browser) == _code(cli) == "AUTH_RATE_LIMITED"


async def test_http_guesses_count_toward_the_websocket_lockout(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        limits=Limits(tick_interval_ms=60_000), openai_http=_openai_on()
    )
    for attempt in range(10):
        headers = {"Authorization": f"Bearer guess-{attempt}"}
        async with session.get(gateway.http_url + "/v1/models", headers=headers) as response:
            assert response.status == 401
    peer = await open_peer(session, gateway.url)
    await peer.send(request("connect", connect_params(gateway.token), "c"))
    answer = await peer.response("c", timeout=30)
    assert _code(answer) == "AUTH_RATE_LIMITED"


def _openai_on() -> Any:
    from clawgate.config import OpenAIHttpSection

    return OpenAIHttpSection(enabled=True)


async def wrong_guesses(
    session: aiohttp.ClientSession, gateway: RunningGateway, count: int
) -> list[str]:
    """Send `count` connects with wrong tokens; return each answer's details code."""
    codes = []
    client = {"id": "test", "version": "1", "platform": "x", "mode": "test"}
    for attempt in range(count):
        peer = await open_peer(session, gateway.url)
        params = {"minProtocol": 3, "maxProtocol": 4, "client": client}
        params["auth"] = {"token": f"guess-{attempt}"}
        await peer.send(request("connect", params, "c"))
        codes.append((await peer.response("c"))["error"]["details"]["code"])
    return codes


async def test_brute_force_locks_out_then_releases(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    limits = Limits(auth_failure_delay_ms=0, auth_lockout_ms=1000, tick_interval_ms=60_000)
    running = await gateway_factory(limits=limits)
    for code in await wrong_guesses(session, running, 10):
        assert code == "AUTH_TOKEN_MISMATCH"
    locked = await open_peer(session, running.url)
    with pytest.raises(AssertionError):
        await locked.authenticate(running.token)
    assert locked.frames[-1]["error"]["details"]["code"] == "AUTH_RATE_LIMITED"
    await asyncio.sleep(1.1)
    released = await open_peer(session, running.url)
    await released.authenticate(running.token)


async def test_a_device_is_locked_out_wherever_it_connects_from(
    gateway_factory: GatewayFactory,
) -> None:
    limits = Limits(auth_failure_delay_ms=0, auth_lockout_ms=60_000)
    running = await gateway_factory(limits=limits)
    identity = DeviceIdentity.generate()
    async with aiohttp.ClientSession() as session:
        for attempt in range(10):
            peer = await open_peer(session, running.url)
            params = signed_connect_params(identity, peer.challenge, token=f"wrong-{attempt}")
            await peer.send(request("connect", params, "c"))
            await peer.response("c")
        # Forget the address's failures: only the device's own count remains.
        running.server.access.throttle.forget("127.0.0.1")
        peer = await open_peer(session, running.url)
        params = signed_connect_params(identity, peer.challenge, token=running.token)
        await peer.send(request("connect", params, "c"))
        answer = await peer.response("c")
        assert answer["error"]["details"]["code"] == "AUTH_RATE_LIMITED"
        other = await open_peer(session, running.url)
        await other.authenticate(running.token)
    await asyncio.sleep(0)


async def test_failed_hook_logins_lock_the_address_out_everywhere(
    gateway_factory: GatewayFactory,
) -> None:
    limits = Limits(auth_failure_delay_ms=0, tick_interval_ms=200)
    gateway = await hooks_gateway(gateway_factory, limits=limits)
    answers = await asyncio.gather(
        *(post(gateway, "/hooks/agent", {"message": "x"}, token=f"guess-{n}") for n in range(10))
    )
    assert {status for status, _, _ in answers} == {401}
    status, headers, body = await post(gateway, "/hooks/agent", {"message": "x"})
    assert status == 429 and error_code(body) == "RATE_LIMITED" and headers["Retry-After"]
    with pytest.raises(GatewayHandshakeError):
        async with GatewayClient(gateway.url, token=gateway.token):
            pass


async def test_failed_http_logins_lock_out_websocket_connects_too(
    gateway_factory: GatewayFactory,
) -> None:
    limits = Limits(auth_failure_delay_ms=0, tick_interval_ms=200)
    gateway = await openai_gateway(gateway_factory, limits=limits)
    data = b'{"messages": [{"role": "user", "content": "x"}]}'
    for attempt in range(5):
        await openai_post(gateway, "/v1/chat/completions", data, f"wrong-{attempt}")
    for attempt in range(5):
        with pytest.raises(GatewayHandshakeError):
            async with GatewayClient(gateway.url, token=f"wrong-{attempt}"):
                pass
    status, headers, body = await openai_post(gateway, "/v1/chat/completions", data, gateway.token)
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert 0 < int(headers["Retry-After"]) <= 60
    client = GatewayClient(gateway.url, token=gateway.token)
    with pytest.raises(GatewayHandshakeError) as caught:
        await client.connect()
    assert "too many failed attempts" in str(caught.value)
    await client.close()
