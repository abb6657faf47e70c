"""Random and mutated frames never crash the server and always get a spec answer.

The random frames go over a raw socket (``tests.wire``): they may carry any id or none, and
``GatewayClient`` drops responses it cannot match to one of its own calls, so it cannot show
the test what the server answered. The fresh client checked after each example is the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clawgate.client import GatewayClient
from clawgate.gateway.methods import build_registry
from clawgate.protocol.errors import ERROR_CODES
from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.conftest import TEST_CLIENT
from tests.wire import open_peer

METHODS = build_registry().method_names()
# Closes the spec allows after authentication for text frames (§2.3, §7).
ALLOWED_CLOSES = {1008, 1009}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
param_keys = st.sampled_from(
    ["probe", "text", "enabled", "cursor", "limit", "maxBytes", "idempotencyKey", "instanceId"]
)
valid_looking = st.fixed_dictionaries(
    {
        "type": st.just("req"),
        "id": st.text(min_size=1, max_size=20),
        "method": st.sampled_from([*METHODS, "connect", "no.such"]),
    },
    optional={"params": st.dictionaries(param_keys, json_values, max_size=4) | json_values},
)


def mutate(frame: dict[str, Any], key: str, value: Any, drop: bool) -> dict[str, Any]:
    mutated = dict(frame)
    if drop:
        mutated.pop(key, None)
    else:
        mutated[key] = value
    return mutated


frames = st.one_of(
    st.text(max_size=200),
    json_values.map(lambda value: orjson.dumps(value).decode()),
    valid_looking.map(lambda frame: orjson.dumps(frame).decode()),
    st.builds(
        mutate,
        valid_looking,
        st.sampled_from(["type", "id", "method", "params", "extra", "seq"]),
        json_values,
        st.booleans(),
    ).map(lambda frame: orjson.dumps(frame).decode()),
)


@pytest.fixture
async def server(gateway_factory: GatewayFactory) -> RunningGateway:
    return await gateway_factory(limits=Limits(tick_interval_ms=60_000))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=12))
async def test_random_frames_get_answers_and_the_server_survives(
    server: RunningGateway, session: aiohttp.ClientSession, batch: list[str]
) -> None:
    peer = await open_peer(session, server.url)
    await peer.authenticate(server.token)
    answered = 0
    closed = False
    for text in batch:
        await peer.send(text)
        frame = await _next_response(peer)
        if frame is None:
            closed = True
            break
        answered += 1
        assert set(frame) <= {"type", "id", "ok", "payload", "error"}
        if not frame["ok"]:
            assert frame["error"]["code"] in ERROR_CODES
            assert frame["error"]["message"] != "internal error", text
    if closed:
        assert peer.ws.close_code in ALLOWED_CLOSES
    else:
        assert answered == len(batch)
        await peer.ws.close()
    # Whatever happened, a fresh client is served normally.
    async with GatewayClient(server.url, token=server.token, **TEST_CLIENT) as probe:
        assert (await probe.request("health", timeout=5)).ok is True


async def _next_response(peer: Any) -> dict[str, Any] | None:
    while True:
        frame = await peer.next_frame(timeout=5)
        if frame is None or frame["type"] == "res":
            return frame
