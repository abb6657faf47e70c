"""A scripted node for gateway tests: a real SDK client with role node that answers invokes.

Each test decides how the node answers (`answer`), so one helper covers success, errors,
silence (timeouts) and late answers. The node records every invoke request and cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from clawgate.client import Event, GatewayClient
from clawgate.protocol.device_auth import DeviceIdentity
from tests.conftest import RunningGateway

#: How a scripted node answers one `node.invoke.request` payload: a `node.invoke.result`
#: params dict (without id/nodeId), or None to stay silent.
Answer = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


async def echo_answer(request: dict[str, Any]) -> dict[str, Any] | None:
    """Answer with the params it was given, as payloadJSON (what OpenClaw's node host does)."""
    return {"ok": True, "payloadJSON": request["paramsJSON"] or "null"}


async def silent(request: dict[str, Any]) -> None:
    """Never answer (the gateway times the invoke out)."""
    return None


@dataclass
class ScriptedNode:
    """A connected node and what it received."""

    client: GatewayClient
    identity: DeviceIdentity
    answer: Answer
    requests: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> str:
        """The node's id (its device id)."""
        return self.identity.device_id

    async def serve(self) -> None:
        """Answer invoke requests until the connection ends."""
        async with self.client.events() as events:
            async for event in events:
                await self._on_event(event)

    async def _on_event(self, event: Event) -> None:
        if event.event == "node.invoke.cancel":
            self.cancels.append(event.payload)
        elif event.event == "node.invoke.request":
            self.requests.append(event.payload)
            asyncio.get_running_loop().create_task(self._reply(event.payload))

    async def _reply(self, request: dict[str, Any]) -> None:
        result = await self.answer(request)
        if result is None:
            return
        params = {"id": request["id"], "nodeId": request["nodeId"], **result}
        with contextlib.suppress(Exception):
            await self.client.call("node.invoke.result", params)

    async def close(self) -> None:
        """Disconnect and stop serving."""
        await self.client.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def connect_node(
    gateway: RunningGateway,
    *,
    commands: tuple[str, ...] = ("device.info", "system.notify"),
    answer: Answer = echo_answer,
    identity: DeviceIdentity | None = None,
    token: str | None = "",
    caps: tuple[str, ...] = ("system",),
    display_name: str | None = "test node",
) -> ScriptedNode:
    """Connect a node with a fresh (or given) identity and start answering invokes."""
    identity = identity or DeviceIdentity.generate()
    client = GatewayClient(
        gateway.url,
        token=gateway.token if token == "" else token,
        client_id="node-host",
        client_mode="node",
        client_version="1.0",
        platform="linux",
        role="node",
        scopes=(),
        identity=identity,
        display_name=display_name,
        extra_connect_params={
            "commands": list(commands),
            "caps": list(caps),
            "permissions": {"notifications": True},
            "pathEnv": "/usr/bin:/bin",
        },
    )
    node = ScriptedNode(client, identity, answer)
    await client.connect()
    node.task = asyncio.create_task(node.serve())
    await asyncio.sleep(0)  # the event stream is subscribed before any invoke is sent
    return node
