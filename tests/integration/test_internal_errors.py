"""A failing handler is answered `UNAVAILABLE` "internal error" and logged with the connection."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from clawgate.gateway.context import CallContext
from clawgate.gateway.methods.system import EmptyParams, OkResult
from clawgate.gateway.registry import method
from clawgate.protocol.scopes import READ
from tests.conftest import RunningGateway
from tests.wire import open_peer, request

SECRET_DETAIL = "db password is hunter2"


@method("test.explode", params=EmptyParams, result=OkResult, scope=READ)
async def explode(ctx: CallContext, params: EmptyParams) -> dict[str, bool]:
    """Fail the way a buggy handler would."""
    raise RuntimeError(SECRET_DETAIL)


@method("test.explode-now", params=EmptyParams, result=OkResult, scope=READ)
def explode_now(ctx: CallContext, params: EmptyParams) -> dict[str, bool]:
    """Fail inline, the way a buggy non-waiting handler would."""
    raise RuntimeError(SECRET_DETAIL)


async def test_inline_handler_failure_is_an_internal_error(gateway: RunningGateway) -> None:
    gateway.server.methods.register(explode_now)
    async with aiohttp.ClientSession() as session:
        peer = await open_peer(session, gateway.url)
        await peer.authenticate(gateway.token)
        await peer.send(request("test.explode-now", None, "boom"))
        answer = await peer.response("boom")
        assert answer["error"] == {"code": "UNAVAILABLE", "message": "internal error"}


async def test_unexpected_exception_text_never_reaches_the_client(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.server.methods.register(explode)
    caplog.set_level(logging.ERROR, logger="clawgate")
    async with aiohttp.ClientSession() as session:
        peer = await open_peer(session, gateway.url)
        hello = await peer.authenticate(gateway.token)
        await peer.send(request("test.explode", None, "boom"))
        answer = await peer.response("boom")
        assert answer["error"] == {"code": "UNAVAILABLE", "message": "internal error"}
        assert SECRET_DETAIL not in str(answer)
        await peer.send(request("health", None, "after"))
        assert (await peer.response("after"))["ok"] is True
    conn_id = hello["server"]["connId"]
    failures = [r for r in caplog.records if "test.explode failed" in r.getMessage()]
    assert failures and failures[0].conn == conn_id  # type: ignore[attr-defined]
