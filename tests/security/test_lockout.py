"""Brute force from loopback is throttled like from anywhere (spec §5.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory, RunningGateway
from tests.wire import connect_params, open_peer, request

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
