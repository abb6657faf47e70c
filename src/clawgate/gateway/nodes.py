"""Nodes inside the gateway: who is connected, what they offer, and invokes to them (§10.5).

Invariants:
- A node is keyed by its nodeId (= deviceId); it may have several connections, and invokes
  go to the newest. An invoke is bound to the connection it was sent on: when that
  connection closes, every invoke pending on it fails at once (`NODE_DISCONNECTED`).
- A command surface decided during the handshake is written to the store before
  `hello-ok` (`apply_handshake`), like a pairing change; approvals and renames are written
  before their caller is answered.
- A `node.invoke.result` is accepted only from the node the id was issued to; a result for
  an invoke that already ended is acknowledged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ..protocol.detail_codes import (
    COMMAND_NOT_ALLOWED,
    NODE_DISCONNECTED,
    NODE_ERROR,
    NOT_CONNECTED,
    TIMEOUT,
)
from ..protocol.errors import InvalidRequest, Unavailable
from ..protocol.frames import encode_event
from ..protocol.nodes import (
    CommandPolicy,
    IssuedIds,
    NodeDeclaration,
    NodeSurface,
    SurfaceChanges,
    SurfaceRegistry,
    SurfaceRequest,
)
from ..protocol.pairing import PairingRegistry
from ..protocol.scopes import Role
from ..store import StateStore, nodes_repo
from .broadcaster import Broadcaster
from .exec_approvals import ExecApprovals
from .peer import Peer

__all__ = ["NodeLink", "NodeService"]

logger = logging.getLogger(__name__)

#: Commands whose params carry an argv that exec approvals decide on.
RUN_COMMANDS = frozenset({"system.run"})


class NodeLink(Peer, Protocol):
    """A node's connection as the node service sees it."""

    @property
    def connected_at_ms(self) -> int: ...
    @property
    def node_declaration(self) -> NodeDeclaration | None: ...
    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded frame (here: a targeted event) for the socket."""


@dataclass(slots=True)
class _Pending:
    node_id: str
    conn_id: str
    command: str
    future: asyncio.Future[dict[str, Any]]


@dataclass(slots=True)
class _NodeState:
    """What the gateway knows of one node in this process (live or last seen)."""

    links: list[NodeLink] = field(default_factory=list)
    last: NodeLink | None = None
    # Made at the first invoke: an idle node should cost little.
    issued: IssuedIds | None = None
    inventory: dict[str, Any] = field(default_factory=dict)
    # Event names already logged at info: periodic ones (node.host.stats) go to debug after.
    events_seen: set[str] = field(default_factory=set)


class NodeService:
    """Register node connections, list and describe nodes, and carry invokes to them."""

    def __init__(
        self,
        *,
        store: StateStore | None,
        broadcaster: Broadcaster[Any],
        clock: Callable[[], int],
        pairing: Callable[[], PairingRegistry],
        policy: CommandPolicy,
        approvals: ExecApprovals,
        max_pending: int,
    ) -> None:
        """Persist to `store`, announce through `broadcaster`, read devices from `pairing()`."""
        self._store = store
        self._broadcaster = broadcaster
        self._clock = clock
        self._pairing = pairing
        self.policy = policy
        self.approvals = approvals
        self._max_pending = max_pending
        self.surfaces = SurfaceRegistry()
        self._nodes: dict[str, _NodeState] = {}
        self._by_conn: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._pending_per_node: Counter[str] = Counter()

    async def load(self) -> None:
        """Read approved surfaces and waiting requests from the store."""
        if self._store is None:
            return
        surfaces, requests = await self._store.read(nodes_repo.load_surfaces)
        self.surfaces = SurfaceRegistry(surfaces, requests)

    # -- the handshake and the connection's life ----------------------------------

    async def apply_handshake(self, changes: SurfaceChanges) -> None:
        """Persist what a node's connect changed in its surface, then announce it."""
        if changes.empty:
            return
        await self._save(
            surface=changes.surface, request=changes.request, dropped=changes.dropped_requests
        )
        if changes.request is not None and changes.request_is_new:
            logger.info(
                "node %s asks to offer %d commands (request %s)",
                changes.request.node_id[:16],
                len(changes.request.commands),
                changes.request.request_id,
            )
            self._broadcaster.broadcast("node.pair.requested", changes.request.payload())
        if changes.auto_approved is not None and changes.surface is not None:
            logger.info(
                "node %s command surface approved on loopback", changes.surface.node_id[:16]
            )
            self.announce_resolved(changes.auto_approved, changes.surface.node_id, "approved")

    def joined(self, link: NodeLink) -> None:
        """Register a node connection that received its `hello-ok`; it now gets invokes."""
        if link.role is not Role.NODE or link.device_id is None:
            return
        state = self._nodes.setdefault(link.device_id, _NodeState())
        state.links.append(link)
        state.last = link
        self._by_conn[link.conn_id] = link.device_id

    def left(self, conn_id: str) -> None:
        """Forget a closed connection; its pending invokes fail at once."""
        node_id = self._by_conn.pop(conn_id, None)
        if node_id is None:
            return
        state = self._nodes[node_id]
        state.links = [link for link in state.links if link.conn_id != conn_id]
        failed = [p for p in self._pending.values() if p.conn_id == conn_id]
        for pending in failed:
            if not pending.future.done():
                pending.future.set_exception(
                    Unavailable(
                        "the node disconnected before answering; check it and invoke again",
                        details={"code": NODE_DISCONNECTED, "nodeId": node_id},
                    )
                )
        if failed:
            logger.info("node %s left with %d invokes pending", node_id[:16], len(failed))

    def newest(self, node_id: str) -> NodeLink | None:
        """Return the node's newest live connection."""
        state = self._nodes.get(node_id)
        return state.links[-1] if state is not None and state.links else None

    # -- what a node offers -------------------------------------------------------

    def effective_commands(self, node_id: str, declared: Iterable[str]) -> tuple[str, ...]:
        """Return the declared commands the policy allows and the approved surface holds."""
        approved = set(self.surfaces.approved(node_id))
        return tuple(c for c in self.policy.effective(declared) if c in approved)

    def paired_node_ids(self) -> list[str]:
        """Return the ids of devices paired for role `node`."""
        return [d.device_id for d in self._pairing().devices.values() if "node" in d.roles]

    def node_ids(self) -> list[str]:
        """Return every node to list: paired for role node, or connected now."""
        ids = dict.fromkeys(self.paired_node_ids())
        ids.update((node_id, None) for node_id, state in self._nodes.items() if state.links)
        return list(ids)

    def entry(self, node_id: str, *, admin: bool) -> dict[str, Any] | None:
        """Return the NodeEntry of a paired or connected node, or None when unknown."""
        device = self._pairing().devices.get(node_id)
        state = self._nodes.get(node_id)
        link = state.links[-1] if state is not None and state.links else None
        seen = link or (state.last if state is not None else None)
        paired = device is not None and "node" in device.roles
        if not paired and link is None:
            return None
        surface = self.surfaces.surfaces.get(node_id)
        declaration = seen.node_declaration if seen is not None else None
        declared = (
            declaration.commands if declaration is not None else self.surfaces.approved(node_id)
        )
        client = seen.client if seen is not None else None
        entry: dict[str, Any] = {
            "nodeId": node_id,
            "caps": list(declaration.caps) if declaration is not None else [],
            "commands": list(self.effective_commands(node_id, declared)),
            "permissions": dict(declaration.permissions) if declaration is not None else {},
            "paired": paired,
            "connected": link is not None,
        }
        display_name = (
            (surface.display_name if surface is not None else None)
            or (client.displayName if client is not None else None)
            or (device.display_name if device is not None else None)
        )
        optional: dict[str, Any] = {
            "displayName": display_name,
            "platform": client.platform
            if client is not None
            else (device.platform if device else None),
            "deviceFamily": client.deviceFamily
            if client is not None
            else (device.device_family if device else None),
            "modelIdentifier": client.modelIdentifier if client is not None else None,
            "version": client.version if client is not None else None,
            "remoteIp": seen.remote_ip
            if seen is not None
            else (device.remote_ip if device else None),
            "connectedAtMs": link.connected_at_ms if link is not None else None,
        }
        if admin and declaration is not None:
            optional["pathEnv"] = declaration.path_env
        entry.update((key, value) for key, value in optional.items() if value is not None)
        return entry

    def inventory(self, node_id: str) -> dict[str, Any]:
        """Return the latest inventories a node published (runner, skills, plugin tools)."""
        state = self._nodes.get(node_id)
        return dict(state.inventory) if state is not None else {}

    def first_event(self, node_id: str, event: str) -> bool:
        """Return whether this is the first `event` the node sent in this process."""
        seen = self._nodes.setdefault(node_id, _NodeState()).events_seen
        first = event not in seen
        seen.add(event)
        return first

    def update_inventory(self, node_id: str, kind: str, value: Any) -> None:
        """Keep the latest inventory of one kind for a node."""
        self._nodes.setdefault(node_id, _NodeState()).inventory[kind] = value

    async def rename(self, node_id: str, display_name: str) -> NodeSurface:
        """Name a node for operators; written before the caller is answered."""
        surface = self.surfaces.rename(node_id, display_name)
        await self._save(surface=surface)
        return surface

    # -- command-surface approval -------------------------------------------------

    async def approve_surface(self, request_id: str) -> NodeSurface:
        """Approve a waiting surface, persisted before it is announced.

        Raises:
            KeyError: unknown or expired request.
        """
        surface = self.surfaces.approve(request_id, self._clock())
        await asyncio.shield(self._save(surface=surface, dropped=[request_id]))
        self.announce_resolved(request_id, surface.node_id, "approved")
        return surface

    async def reject_surface(self, request_id: str) -> SurfaceRequest:
        """Reject a waiting surface; the node keeps what was approved before.

        Raises:
            KeyError: unknown or expired request.
        """
        request = self.surfaces.reject(request_id, self._clock())
        await asyncio.shield(self._save(dropped=[request_id]))
        self.announce_resolved(request_id, request.node_id, "rejected")
        return request

    async def forget(self, node_id: str) -> None:
        """Forget a removed device's surface, name and exec policy: re-pairing starts over."""
        self.surfaces.remove(node_id)
        self.approvals.forget_node(node_id)
        if self._store is not None:
            await self._store.write(
                lambda conn: nodes_repo.save_surface_changes(conn, removed_node=node_id)
            )

    def announce_resolved(self, request_id: str, node_id: str, decision: str) -> None:
        """Tell pairing operators (and the node, which listens for it) how a request ended."""
        payload = {
            "requestId": request_id,
            "nodeId": node_id,
            "decision": decision,
            "ts": self._clock(),
        }
        self._broadcaster.broadcast("node.pair.resolved", payload)
        # The node is told directly: OpenClaw's node host refreshes itself on approval.
        state = self._nodes.get(node_id)
        if state is not None:
            frame = encode_event("node.pair.resolved", payload)
            for link in state.links:
                link.send_frame(frame)

    async def _save(
        self,
        *,
        surface: NodeSurface | None = None,
        request: SurfaceRequest | None = None,
        dropped: list[str] | tuple[str, ...] = (),
    ) -> None:
        store = self._store
        if store is None:
            return
        await store.write(
            lambda conn: nodes_repo.save_surface_changes(
                conn, surface=surface, request=request, dropped=dropped
            )
        )

    # -- invokes ------------------------------------------------------------------

    async def invoke(
        self,
        caller: Peer,
        node_id: str,
        command: str,
        params: Any,
        timeout_ms: int,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Carry one command to a node and return its outcome for the operator.

        Raises:
            Unavailable: the node is offline (`NOT_CONNECTED`), left (`NODE_DISCONNECTED`),
                did not answer in time (`TIMEOUT`), failed (its code or `NODE_ERROR`),
                has too many invokes pending (retryable), or exec approval refused it.
            InvalidRequest: the command is not effective on that node (`COMMAND_NOT_ALLOWED`).
        """
        link = self._check(node_id, command)
        if command in RUN_COMMANDS:
            argv, cwd = _run_argv(params)
            requested_by = _caller_name(caller)
            await self.approvals.authorize(node_id, argv, cwd, requested_by)
            link = self._check(node_id, command)  # the node may have left meanwhile
        if self._pending_per_node[node_id] >= self._max_pending:
            raise Unavailable(
                f"node has {self._max_pending} invokes pending; retry when some finish",
                retryable=True,
                retry_after_ms=500,
            )
        invoke_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[invoke_id] = _Pending(node_id, link.conn_id, command, future)
        self._pending_per_node[node_id] += 1
        state = self._nodes[node_id]
        if state.issued is None:
            state.issued = IssuedIds()
        state.issued.add(invoke_id)
        request = {
            "id": invoke_id,
            "nodeId": node_id,
            "command": command,
            "paramsJSON": None if params is None else orjson.dumps(params).decode(),
            "timeoutMs": timeout_ms,
            "idempotencyKey": idempotency_key,
        }
        try:
            link.send_frame(encode_event("node.invoke.request", request))
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    result = await future
            except TimeoutError:
                link.send_frame(
                    encode_event(
                        "node.invoke.cancel",
                        {"id": invoke_id, "invokeId": invoke_id, "nodeId": node_id},
                    )
                )
                raise Unavailable(
                    f"node did not answer {command} within {timeout_ms} ms; "
                    "raise timeoutMs or check the node",
                    details={"code": TIMEOUT, "nodeId": node_id},
                ) from None
        finally:
            self._pending.pop(invoke_id, None)
            self._pending_per_node[node_id] -= 1
            if self._pending_per_node[node_id] <= 0:
                del self._pending_per_node[node_id]
        return _outcome(node_id, command, result)

    def _check(self, node_id: str, command: str) -> NodeLink:
        link = self.newest(node_id)
        if link is None:
            raise Unavailable(
                "node not connected; list nodes with node.list",
                details={"code": NOT_CONNECTED, "nodeId": node_id},
            )
        declaration = link.node_declaration
        declared = declaration.commands if declaration is not None else ()
        # Checked per invoke, so without building the whole effective list.
        allowed = (
            command in declared
            and command in self.surfaces.approved(node_id)
            and self.policy.allows(command)
        )
        if not allowed:
            raise InvalidRequest(
                f"command {command} is not allowed on this node; it must be declared, allowed "
                "in [nodes] allow_commands and approved with node.pair.approve",
                details={"code": COMMAND_NOT_ALLOWED, "nodeId": node_id, "command": command},
            )
        return link

    def result(self, caller: Peer, params: Any) -> None:
        """Accept a node's `node.invoke.result`: resolve its invoke, or drop a late one.

        Raises:
            InvalidRequest: the id was never issued to this node, or `nodeId` is not the caller.
        """
        node_id = caller.device_id
        if node_id is None or params.nodeId != node_id:
            raise InvalidRequest("nodeId is not this node's id")
        state = self._nodes.get(node_id)
        if state is None or state.issued is None or params.id not in state.issued:
            raise InvalidRequest(f"unknown invoke id {params.id} for this node")
        pending = self._pending.get(params.id)
        if pending is None or pending.future.done():
            logger.info("late result for invoke %s from node %s dropped", params.id, node_id[:16])
            return
        pending.future.set_result(
            {
                "ok": params.ok,
                "payload": params.payload,
                "payloadJSON": params.payloadJSON,
                "error": params.error.model_dump(exclude_none=True) if params.error else None,
                "has_payload": "payload" in params.model_fields_set,
            }
        )


def _outcome(node_id: str, command: str, result: dict[str, Any]) -> dict[str, Any]:
    """Turn a node's result into the operator's answer, or raise its error."""
    if not result["ok"]:
        error = result["error"] or {}
        code = error.get("code") or NODE_ERROR
        message = error.get("message") or "node reported an error"
        raise Unavailable(
            f"node error: {message}",
            details={
                "code": code,
                "nodeId": node_id,
                "nodeError": {"code": code, "message": message},
            },
        )
    answer: dict[str, Any] = {"ok": True, "nodeId": node_id, "command": command}
    payload_json = result["payloadJSON"]
    if result["has_payload"]:
        answer["payload"] = result["payload"]
    elif isinstance(payload_json, str):
        # OpenClaw's clients read `payload`; its node host sends only `payloadJSON`.
        with contextlib.suppress(orjson.JSONDecodeError):
            answer["payload"] = orjson.loads(payload_json)
    if isinstance(payload_json, str):
        answer["payloadJSON"] = payload_json
    return answer


def _run_argv(params: Any) -> tuple[list[str], str | None]:
    """Return `system.run`'s argv and cwd (OpenClaw's shape: `{command: [argv...], cwd?}`).

    Raises:
        InvalidRequest: no argv.
    """
    argv = params.get("command") if isinstance(params, dict) else None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidRequest('system.run needs params {"command": ["program", "arg", ...]}')
    cwd = params.get("cwd")
    return argv, cwd if isinstance(cwd, str) else None


def _caller_name(caller: Peer) -> str:
    """Return how an approval request names who asked for it."""
    client = caller.client
    name = client.displayName or client.id if client is not None else "unknown"
    if caller.device_id is not None:
        return f"{name} ({caller.device_id[:12]})"
    return f"{name} ({caller.conn_id[:8]})"
