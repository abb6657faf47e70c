"""Python client SDK for the clawgate gateway WebSocket protocol (OpenClaw protocol 3 and 4).

Example::

    async with GatewayClient(token="...") as client:
        health = await client.call("health")
        async for event in client.events():
            ...
"""

from ._backoff import Backoff
from ._client import DEFAULT_URL, ClientState, GatewayClient
from ._errors import (
    GatewayCallError,
    GatewayConnectionError,
    GatewayError,
    GatewayHandshakeError,
    GatewayTimeoutError,
    SequenceGapError,
)
from ._frames import ErrorInfo, Event, Response
from ._stream import EventStream

__all__ = [
    "DEFAULT_URL",
    "Backoff",
    "ClientState",
    "ErrorInfo",
    "Event",
    "EventStream",
    "GatewayCallError",
    "GatewayClient",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayHandshakeError",
    "GatewayTimeoutError",
    "Response",
    "SequenceGapError",
]
