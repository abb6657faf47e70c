"""One WebSocket connection: handshake phase, then reader, writer and request tasks.

Invariants:
- Nothing but the challenge and the connect response is written before `hello-ok`.
- After `hello-ok` every outbound frame goes through `_enqueue`, so frames reach the
  client in the order they were queued, and one writer task owns the socket's send side.
- `seq` is assigned in `send_event` when the frame is queued, so filtered events consume
  none and the client never sees a gap.
- A broadcast event is queued as the shared serialised event and its `seq`; the writer
  builds the frame's bytes only when it writes them. A broadcast to n sockets thus holds
  one copy of its payload, not n (a presence list to 1000 clients is 150 KB each).
- A closed connection lets go of its unsent frames, its dispatcher and its tasks, so
  refcounting frees it at once. A long-lived connection is in the oldest GC generation,
  and while it sat in a cycle (dispatcher <-> connection, or a cancelled task's traceback
  back to its frame) it waited for a full collection, holding its socket buffers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from aiohttp import WSMsgType, hdrs, web

from ..protocol.connect import ClientInfo
from ..protocol.frames import PreparedEvent, encode_error, encode_event, encode_response
from ..protocol.handshake import (
    CLOSE_AUTH_CHANGED,
    CLOSE_BINARY,
    CLOSE_POLICY,
    CLOSE_RESTART,
    Accepted,
    HandshakeMachine,
    Rejected,
    is_loopback_origin,
)
from ..protocol.hello import HelloAuth
from ..protocol.limits import Limits
from ..protocol.nodes import NodeDeclaration
from ..protocol.scopes import Role
from .access import GatewayAccess
from .dispatcher import Dispatcher, DispatchTable
from .metrics import GatewayMetrics
from .nodes import NodeService
from .pairing import PairingService
from .websocket import GatewayWebSocket

__all__ = ["Connection", "ConnectionDeps", "ConnectionState", "Lobby"]

logger = logging.getLogger(__name__)

# How long a close handshake may take before the transport is dropped.
_CLOSE_TIMEOUT_S = 2.0
# What `with_seq` adds to a broadcast event's head at most: `,"seq":<int64>}`.
_SEQ_TAIL_BYTES = 28

# A queued frame: encoded bytes, or a broadcast event and the `seq` it goes out with.
_Queued = bytes | tuple[PreparedEvent, int]


def _queued_size(item: _Queued) -> int:
    return len(item) if isinstance(item, bytes) else len(item[0].head) + _SEQ_TAIL_BYTES


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class ConnectionState(Enum):
    """Where a connection is in its life."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Lobby(Protocol):
    """Where a connection joins the gateway once its handshake succeeds."""

    @property
    def ready(self) -> bool: ...
    @property
    def stopping(self) -> bool: ...
    def welcome(self, connection: Connection, auth: HelloAuth) -> dict[str, Any]:
        """Register `connection` for broadcasts and return its `hello-ok`."""
        ...

    def joined(self, connection: Connection) -> None:
        """Announce a connection that received its `hello-ok`."""

    def left(self, connection: Connection) -> None:
        """Forget a connection that joined and has closed."""


@dataclass(frozen=True, slots=True)
class ConnectionDeps:
    """What every connection of one gateway shares."""

    limits: Limits
    clock: Callable[[], int]
    access: GatewayAccess
    pairing: PairingService
    nodes: NodeService
    metrics: GatewayMetrics
    dispatch: DispatchTable
    lobby: Lobby


class Connection:
    """Serve one client socket from challenge to close."""

    # Slots: thousands of idle connections each save the cost of an instance dict.
    __slots__ = (
        "_auto_approve",
        "_close_code_sent",
        "_closing_task",
        "_deps",
        "_dispatcher",
        "_drained_waiter",
        "_queue",
        "_queued_bytes",
        "_seq",
        "_stop_writing",
        "_transport",
        "_wakeup",
        "_writer_task",
        "_ws",
        "client",
        "conn_id",
        "connected_at_ms",
        "device_id",
        "log",
        "node_declaration",
        "origin",
        "presence_key",
        "protocol",
        "reached_host",
        "remote_ip",
        "role",
        "scopes",
        "state",
        "via_device_token",
    )

    def __init__(
        self, deps: ConnectionDeps, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self._deps = deps
        self.conn_id = str(uuid.uuid4())
        self.remote_ip = request.remote or ""
        self.reached_host: str | None = request.headers.get(hdrs.HOST)
        self.origin = request.headers.get("Origin")
        forwarded = any(
            name in request.headers for name in ("Forwarded", "X-Forwarded-For", "X-Real-IP")
        )
        local = _is_loopback(self.remote_ip) and not forwarded
        self._auto_approve = (
            deps.access.auto_approve_loopback
            and local
            and (self.origin is None or is_loopback_origin(self.origin))
        )
        self.state = ConnectionState.HANDSHAKE
        self.log = logging.LoggerAdapter(logger, {"conn": self.conn_id})
        self.role = Role.OPERATOR
        self.scopes: tuple[str, ...] = ()
        self.protocol = 4
        self.client: ClientInfo | None = None
        self.device_id: str | None = None
        self.presence_key: str | None = None
        self.node_declaration: NodeDeclaration | None = None
        self.connected_at_ms = 0
        self._ws = ws
        self._transport = request.transport
        # Made for the first frame and dropped once written: an idle connection holds no
        # deque (an empty one costs ~760 B, 4% of an idle connection).
        self._queue: deque[_Queued] | None = None
        self._queued_bytes = 0
        # Futures, created only while someone waits: an idle connection should cost little.
        self._wakeup: asyncio.Future[None] | None = None  # the writer waits for frames
        self._drained_waiter: asyncio.Future[None] | None = None  # shutdown waits for the writer
        self._seq = 0
        self._dispatcher: Dispatcher | None = Dispatcher(self, deps.dispatch, self.log)
        self._writer_task: asyncio.Task[None] | None = None
        self._closing_task: asyncio.Task[None] | None = None
        self._close_code_sent: int | None = None
        self._stop_writing = False
        self.via_device_token = False

    # -- life cycle ---------------------------------------------------------------

    async def serve(self) -> None:
        """Run the connection until the socket closes."""
        try:
            accepted = await self._handshake()
            if accepted is not None:
                self._open(accepted)
                del accepted  # it holds the connect params, credentials included
                await self._read_loop()
        finally:
            await self._teardown()

    async def _handshake(self) -> Accepted | None:
        deps = self._deps
        access = deps.access
        machine_auth = access.auth
        machine = HandshakeMachine(
            nonce=str(uuid.uuid4()),
            auth=machine_auth,
            throttle=access.throttle,
            limits=deps.limits,
            remote_ip=self.remote_ip,
            origin=self.origin,
            allowed_origins=access.allowed_origins,
            pairing=deps.pairing.registry,
            auto_approve=self._auto_approve,
            surfaces=deps.nodes.surfaces,
        )
        challenge = encode_event("connect.challenge", machine.challenge(deps.clock()))
        await self._ws.send_frame(challenge, WSMsgType.TEXT)
        try:
            async with asyncio.timeout(deps.limits.handshake_timeout_ms / 1000):
                message = await self._ws.receive()
                if message.type is WSMsgType.TEXT:
                    outcome = machine.receive_text(
                        message.data, ready=deps.lobby.ready, now_ms=deps.clock()
                    )
                elif message.type is WSMsgType.BINARY:
                    outcome = machine.receive_binary()
                else:
                    return None  # the client left, or the transport refused the frame
                if outcome.pairing is not None:
                    # Written before the client hears of it: a token or request it is
                    # told about survives a crash.
                    await deps.pairing.apply_handshake(outcome.pairing)
                if isinstance(outcome, Accepted) and outcome.surface is not None:
                    # A node's command surface, too, is written before it is told.
                    await deps.nodes.apply_handshake(outcome.surface)
                if isinstance(outcome, Accepted):
                    return await self._confirm(outcome, machine_auth)
                await self._reject(outcome)
                return None
        except TimeoutError:
            await self._reject(machine.timed_out())
            return None

    async def _confirm(self, accepted: Accepted, machine_auth: object) -> Accepted | None:
        """Re-check what may have changed while the handshake awaited its write."""
        deps = self._deps
        if deps.lobby.stopping:
            await self._close_socket(CLOSE_RESTART, "service restart")
            return None
        registry = deps.pairing.registry
        device_id = accepted.device_id
        revoked = (
            device_id is not None
            and accepted.device_token is not None
            and registry.token_for(device_id, accepted.role.value) is None
        )
        secret_changed = not accepted.via_device_token and deps.access.auth is not machine_auth
        if revoked or secret_changed:
            await self._close_socket(CLOSE_AUTH_CHANGED, "gateway auth changed")
            return None
        return accepted

    async def _reject(self, rejected: Rejected) -> None:
        self._deps.metrics.handshakes["rejected"] += 1
        if rejected.error is not None:
            self.log.info(
                "handshake refused from %s: %s (%s)",
                self.remote_ip,
                rejected.error.message,
                (rejected.error.details or {}).get("code", rejected.error.code),
            )
        else:
            self.log.info("handshake closed from %s: %s", self.remote_ip, rejected.close_reason)
        if rejected.delay_ms:
            await asyncio.sleep(rejected.delay_ms / 1000)
        if rejected.error is not None and rejected.reply_id is not None:
            frame = encode_error(rejected.reply_id, rejected.error)
            await self._ws.send_frame(frame, WSMsgType.TEXT)
        await self._close_socket(rejected.close_code, rejected.close_reason)

    def _open(self, accepted: Accepted) -> None:
        params = accepted.params
        self.role = accepted.role
        self.scopes = accepted.scopes
        self.protocol = accepted.protocol
        self.client = params.client
        self.device_id = accepted.device_id
        self.via_device_token = accepted.via_device_token
        if self.role is Role.NODE:
            self.node_declaration = NodeDeclaration.from_connect(
                params.caps, params.commands, params.permissions, params.pathEnv
            )
        deps = self._deps
        self.connected_at_ms = deps.clock()
        self.state = ConnectionState.OPEN
        if isinstance(self._ws, GatewayWebSocket):
            self._ws.raise_frame_limit(deps.limits.max_payload)
        self._writer_task = asyncio.create_task(self._writer(), name=f"writer-{self.conn_id}")
        # Snapshot and broadcast registration happen in one synchronous step inside
        # `welcome`, so no event can fall between the snapshot and the first event.
        auth = HelloAuth(
            role=self.role.value,
            scopes=self.scopes,
            device_token=accepted.device_token,
            issued_at_ms=accepted.token_issued_at_ms,
        )
        hello = deps.lobby.welcome(self, auth)
        self._enqueue(encode_response(accepted.request_id, hello))
        deps.metrics.handshakes["accepted"] += 1
        self.log.info(
            "connected %s/%s role=%s protocol=%d from %s",
            params.client.id,
            params.client.mode,
            self.role.value,
            self.protocol,
            self.remote_ip,
        )
        deps.lobby.joined(self)

    async def _teardown(self) -> None:
        was_open = self.state in (ConnectionState.OPEN, ConnectionState.CLOSING)
        # A close in progress finishes first: it lets the writer flush, then closes.
        if self._closing_task is not None:
            await asyncio.gather(self._closing_task, return_exceptions=True)
        self.state = ConnectionState.CLOSED
        self._release_drain_waiter()
        pending = [*self._dispatcher.tasks()] if self._dispatcher is not None else []
        if self._writer_task is not None:
            pending.append(self._writer_task)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._queue = None
        self._queued_bytes = 0
        if not self._ws.closed:
            await self._close_socket(1000, "")
        if was_open:
            self._deps.lobby.left(self)
            if self._close_code_sent is not None:
                self.log.info("disconnected: closed by gateway (%d)", self._close_code_sent)
            else:
                self.log.info("disconnected: closed by client (%s)", self._ws.close_code)
        self._dispatcher = self._writer_task = self._closing_task = None

    # -- reading ------------------------------------------------------------------

    async def _read_loop(self) -> None:
        dispatcher = self._dispatcher
        assert dispatcher is not None  # dropped at teardown only, after reading stopped
        async for message in self._ws:
            if self.state is not ConnectionState.OPEN:
                break
            if message.type is WSMsgType.TEXT:
                self._deps.metrics.frames_in += 1
                dispatcher.receive(message.data)
            elif message.type is WSMsgType.BINARY:
                self.close(CLOSE_BINARY, "binary frames not supported")
                break
            else:
                break

    # -- writing ------------------------------------------------------------------

    def respond(self, request_id: str, payload: Any) -> None:
        """Queue a successful response, or `response too large` if it would not fit."""
        if self._dispatcher is not None:
            self._dispatcher.respond(request_id, payload)

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded frame (a response or a targeted event) for the writer."""
        self._enqueue(frame)

    def send_event(self, prepared: PreparedEvent) -> None:
        """Queue a broadcast event with this connection's next `seq`."""
        if self.state is not ConnectionState.OPEN:
            return
        self._seq += 1
        self._enqueue((prepared, self._seq))

    def send_targeted(self, event: str, payload: Any) -> None:
        """Queue a targeted event, which carries no `seq`."""
        self._enqueue(encode_event(event, payload))

    @property
    def buffered_bytes(self) -> int:
        """Bytes queued or in the transport, not yet written to the socket."""
        transport = self._transport
        in_transport = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued_bytes + in_transport

    def _enqueue(self, item: _Queued) -> None:
        if self.state is not ConnectionState.OPEN:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(item)
        self._queued_bytes += _queued_size(item)
        metrics = self._deps.metrics
        metrics.frames_out += 1
        if self.buffered_bytes > self._deps.limits.max_buffered_bytes:
            metrics.slow_consumers += 1
            self.log.warning("closing slow consumer (%d bytes unwritten)", self.buffered_bytes)
            self._queue = None
            self._queued_bytes = 0
            self.close(CLOSE_POLICY, "slow consumer")
            return
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def wait_drained(self) -> None:
        """Wait until every queued frame has been handed to the transport."""
        writer = self._writer_task
        if writer is None or writer.done() or (not self._queue and self._wakeup is not None):
            return
        if self._drained_waiter is None:
            self._drained_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drained_waiter)

    def _release_drain_waiter(self) -> None:
        waiter, self._drained_waiter = self._drained_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _writer(self) -> None:
        ws = self._ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                queue = self._queue
                if not queue:
                    self._queue = queue = None
                    self._release_drain_waiter()
                    if self._stop_writing:
                        return  # everything accepted before the close is written
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                    continue
                item = queue.popleft()
                del queue
                self._queued_bytes -= _queued_size(item)
                frame = item if isinstance(item, bytes) else item[0].with_seq(item[1])
                del item
                await ws.send_frame(frame, WSMsgType.TEXT)
                # Drop the reference now: an idle writer must not pin its last frame.
                del frame
        except ConnectionError:
            self.log.debug("writer stopped: connection lost")

    # -- closing ------------------------------------------------------------------

    def close_after_answer(self, code: int, reason: str) -> None:
        """Close once the answer to the request being handled has been queued."""
        if self._dispatcher is not None:
            self._dispatcher.close_after_answer(code, reason)

    def close(self, code: int, reason: str) -> None:
        """Close the socket with `code` once; safe to call from synchronous code."""
        if self.state is not ConnectionState.OPEN:
            return
        self.state = ConnectionState.CLOSING
        self._closing_task = asyncio.create_task(self._close_after_writer(code, reason))

    async def abort_handshake(self, code: int, reason: str) -> None:
        """Close a socket that has not finished its handshake (no event is sent)."""
        if self.state is ConnectionState.HANDSHAKE:
            await self._close_socket(code, reason)

    async def close_gracefully(self, code: int, reason: str) -> None:
        """Close after the queued frames were written (used at shutdown)."""
        self.close(code, reason)
        if self._closing_task is not None:
            await asyncio.shield(self._closing_task)

    async def _close_after_writer(self, code: int, reason: str) -> None:
        # The writer is never cancelled mid-frame: cancelling aiohttp's send while it
        # waits for the client to drain breaks every later write on the socket, the
        # close frame included. It is told to stop and given the close timeout to
        # finish; a client that reads nothing in that time has its transport dropped.
        self._stop_writing = True
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        writer = self._writer_task
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                if writer is not None:
                    await asyncio.shield(writer)
        except TimeoutError:
            self.log.info("client did not read in time; dropping the connection")
            if self._transport is not None:
                self._transport.abort()
            return
        await self._close_socket(code, reason)

    async def _close_socket(self, code: int, reason: str) -> None:
        self._close_code_sent = code
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self._ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError):
            if self._transport is not None:
                self._transport.abort()
