"""The headless node host: connect as a node, pair, serve invokes, reconnect with backoff.

One `GatewayClient` per connection attempt (the SDK's own reconnect gives up on a pairing
refusal, which a node must outlive). Each `node.invoke.request` runs in its own task, owned
by the host; `node.invoke.cancel` and a lost connection cancel it, which kills a running
program.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..client import (
    Backoff,
    DeviceIdentity,
    DeviceTokenStore,
    Event,
    GatewayClient,
    GatewayConnectionError,
    GatewayError,
    GatewayHandshakeError,
    GatewayTimeoutError,
)
from .commands import CAPS, COMMANDS, CommandError, NodeCommands

__all__ = ["NodeHost", "NodeHostError"]

logger = logging.getLogger(__name__)

#: Handshake refusals a retry cannot fix: wrong or missing credentials.
_FATAL_DETAIL_CODES: Final = frozenset(
    {
        "AUTH_TOKEN_MISSING",
        "AUTH_TOKEN_MISMATCH",
        "AUTH_PASSWORD_MISSING",
        "AUTH_PASSWORD_MISMATCH",
        "PROTOCOL_MISMATCH",
        "DEVICE_IDENTITY_REQUIRED",
    }
)


class NodeHostError(Exception):
    """The node host cannot go on (bad credentials); the message says what to fix."""


@dataclass(frozen=True, slots=True)
class NodeHostOptions:
    """How the host connects."""

    url: str
    token: str | None
    display_name: str
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class NodeHost:
    """Serve this machine's commands to one gateway until stopped."""

    def __init__(
        self,
        options: NodeHostOptions,
        identity: DeviceIdentity,
        tokens: DeviceTokenStore | None,
        commands: NodeCommands,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        """Connect to `options.url` as `identity`; `say` prints what a person must act on."""
        self._options = options
        self._identity = identity
        self._tokens = tokens
        self._commands = commands
        self._say = say
        self._backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
        self._running: dict[str, asyncio.Task[None]] = {}
        self.connections = 0  # how many times a connection opened (for tests and status)
        self._told_request: str | None = None

    @property
    def node_id(self) -> str:
        """This node's id (its device id)."""
        return self._identity.device_id

    def _client(self) -> GatewayClient:
        return GatewayClient(
            self._options.url,
            token=self._options.token,
            client_id="node-host",
            client_mode="node",
            role="node",
            scopes=(),
            caps=CAPS,
            display_name=self._options.display_name,
            instance_id=self.node_id,
            identity=self._identity,
            device_tokens=self._tokens,
            extra_connect_params={
                "commands": list(COMMANDS),
                "permissions": {},
                "pathEnv": self._commands.environ.get("PATH", ""),
            },
        )

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff until cancelled.

        Raises:
            NodeHostError: the gateway refused the credentials (retrying would lock us out).
        """
        while True:
            client = self._client()
            try:
                await client.connect()
            except GatewayHandshakeError as exc:
                self._refused(exc)
            except (GatewayConnectionError, GatewayTimeoutError, OSError) as exc:
                logger.warning("cannot reach the gateway at %s: %s", self._options.url, exc)
            else:
                self._backoff.reset()
                self.connections += 1
                self._say(f"node {self.node_id[:16]} connected to {self._options.url}")
                try:
                    await self._serve(client)
                finally:
                    await self._stop_running()
                    await client.close()
                logger.warning("connection to the gateway lost; reconnecting")
            await asyncio.sleep(self._backoff.next_delay())

    def _refused(self, exc: GatewayHandshakeError) -> None:
        code = exc.detail_code
        if code == "PAIRING_REQUIRED":
            request_id = (exc.details or {}).get("requestId")
            if request_id != self._told_request:
                self._told_request = request_id
                self._say(
                    f"pairing required: approve request {request_id} on the gateway with "
                    f"`clawgate devices approve {request_id}` (admin); retrying meanwhile"
                )
            return
        if code in _FATAL_DETAIL_CODES:
            raise NodeHostError(f"the gateway refused this node: {exc.message}")
        logger.warning("the gateway refused the connection: %s", exc)

    async def _serve(self, client: GatewayClient) -> None:
        async with client.events() as events:
            async for event in events:
                self._on_event(client, event)

    def _on_event(self, client: GatewayClient, event: Event) -> None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.event == "node.invoke.request":
            invoke_id = payload.get("id")
            if isinstance(invoke_id, str) and invoke_id not in self._running:
                started = asyncio.create_task(self._invoke(client, payload))
                self._running[invoke_id] = started
                started.add_done_callback(lambda _: self._running.pop(invoke_id, None))
        elif event.event == "node.invoke.cancel":
            cancel_id = payload.get("invokeId") or payload.get("id")
            running = self._running.get(cancel_id) if isinstance(cancel_id, str) else None
            if running is not None:
                logger.info("invoke %s cancelled by the gateway", cancel_id)
                running.cancel()
        elif event.event == "node.pair.resolved" and payload.get("nodeId") == self.node_id:
            self._say(f"command surface {payload.get('decision')} by the gateway")

    async def _invoke(self, client: GatewayClient, request: dict[str, Any]) -> None:
        command = str(request.get("command"))
        result: dict[str, Any] = {"id": request["id"], "nodeId": self.node_id}
        try:
            raw = request.get("paramsJSON")
            params = orjson.loads(raw) if isinstance(raw, str) else None
            handler = self._commands.handler(command)
            if handler is None:
                raise CommandError("UNAVAILABLE", f"command {command} not supported by this node")
            payload = await handler(params)
            result.update(ok=True, payloadJSON=orjson.dumps(payload).decode())
        except CommandError as exc:
            result.update(ok=False, error={"code": exc.code, "message": exc.message})
        except orjson.JSONDecodeError:
            result.update(ok=False, error={"code": "INVALID_REQUEST", "message": "bad paramsJSON"})
        except Exception:
            logger.exception("command %s failed", command)
            result.update(ok=False, error={"code": "UNAVAILABLE", "message": "node host error"})
        with contextlib.suppress(GatewayError):
            await client.call("node.invoke.result", result)

    async def _stop_running(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
