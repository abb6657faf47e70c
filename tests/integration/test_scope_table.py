"""Every registered method, called with every scope set, is allowed or refused as declared."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from clawgate.gateway.methods import build_registry
from clawgate.protocol.device_auth import DeviceIdentity
from clawgate.protocol.scopes import ADMIN, MethodRole, scope_satisfied
from tests.conftest import RunningGateway
from tests.wire import RawPeer, open_peer, request, signed_connect_params

SCOPE_SETS = [
    (),
    ("operator.read",),
    ("operator.write",),
    ("operator.pairing",),
    ("operator.approvals",),
    ("operator.read", "operator.pairing"),
    ("operator.admin",),
]
METHODS = list(build_registry())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def allowed(scopes: tuple[str, ...], role: MethodRole, scope: str | None) -> bool:
    if role is MethodRole.ANY:
        return True
    if role is MethodRole.NODE:
        return False
    return scope_satisfied(scopes, scope or ADMIN)


async def probe(peer: RawPeer, method: str, index: int) -> dict[str, object]:
    # Params are {}: where a method needs params the call fails validation *after*
    # authorization, so nothing changes state while the gate itself is exercised.
    await peer.send(request(method, {}, f"m{index}"))
    answer = await peer.response(f"m{index}")
    # An authorized call resets the flood guard so refusals never close the socket.
    await peer.send(request("health", None, f"h{index}"))
    assert (await peer.response(f"h{index}"))["ok"] is True
    return answer


@pytest.mark.parametrize("scopes", SCOPE_SETS, ids=lambda s: ",".join(s) or "none")
async def test_operator_scope_table(
    gateway: RunningGateway, session: aiohttp.ClientSession, scopes: tuple[str, ...]
) -> None:
    peer = await open_peer(session, gateway.url)
    await peer.authenticate(gateway.token, scopes=list(scopes))
    for index, spec in enumerate(METHODS):
        answer = await probe(peer, spec.name, index)
        error = answer.get("error") or {}
        if spec.role is MethodRole.NODE:
            assert error == {"code": "INVALID_REQUEST", "message": "unauthorized role: operator"}
            continue
        refused = isinstance(error, dict) and error.get("code") == "FORBIDDEN"
        assert refused is not allowed(scopes, spec.role, spec.scope), (spec.name, scopes, answer)
        if refused:
            assert error["details"]["code"] == "MISSING_SCOPE"  # type: ignore[index]


async def test_node_role_may_call_only_health_and_node_methods(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity = DeviceIdentity.generate()
    peer = await open_peer(session, gateway.url)
    client = {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"}
    params = signed_connect_params(
        identity, peer.challenge, token=gateway.token, role="node", scopes=(), client=client
    )
    await peer.send(request("connect", params, "c"))
    assert (await peer.response("c"))["ok"] is True
    for index, spec in enumerate(METHODS):
        answer = await probe(peer, spec.name, index)
        if spec.role is MethodRole.ANY:
            assert answer["ok"] is True
        elif spec.role is MethodRole.NODE:
            # Admitted: `{}` then fails validation, or succeeds for methods without params.
            message = str((answer.get("error") or {}).get("message", ""))  # type: ignore[union-attr]
            assert answer["ok"] is True or message.startswith(f"invalid {spec.name} params")
        else:
            assert answer["error"] == {  # type: ignore[comparison-overlap]
                "code": "INVALID_REQUEST",
                "message": "unauthorized role: node",
            }
