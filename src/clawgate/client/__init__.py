"""Python client SDK for the clawgate gateway WebSocket protocol (OpenClaw protocol 3 and 4).

Example::

    async with GatewayClient(token="...") as client:
        health = await client.call("health")
        async for event in client.events():
            ...

With a device identity (spec §4), kept under the clawgate home, and the device tokens the
gateway issues to it::

    identity = load_or_create_identity(home)
    tokens = DeviceTokenStore.in_home(home, identity)
    async with GatewayClient(token="...", identity=identity, device_tokens=tokens) as client:
        ...
"""

from ..protocol.device_auth import DeviceIdentity
from ._backoff import Backoff
from ._client import DEFAULT_URL, GatewayClient
from ._errors import (
    GatewayCallError,
    GatewayConnectionError,
    GatewayError,
    GatewayHandshakeError,
    GatewayTimeoutError,
    IdentityError,
    SequenceGapError,
)
from ._frames import ErrorInfo, Event, Response
from ._identity import DeviceTokenStore, StoredToken, load_or_create_identity
from ._lifecycle import ClientState
from ._stream import EventStream

__all__ = [
    "DEFAULT_URL",
    "Backoff",
    "ClientState",
    "DeviceIdentity",
    "DeviceTokenStore",
    "ErrorInfo",
    "Event",
    "EventStream",
    "GatewayCallError",
    "GatewayClient",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayHandshakeError",
    "GatewayTimeoutError",
    "IdentityError",
    "Response",
    "SequenceGapError",
    "StoredToken",
    "load_or_create_identity",
]
