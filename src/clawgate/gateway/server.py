"""The gateway server: composes the services and serves HTTP and WebSocket on one port."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import __version__
from ..agents.factory import build_backend
from ..config import ClawgateConfig
from ..ipc import PluginRegistry
from ..protocol.auth import AuthMode, AuthThrottle, SharedSecretAuth, secrets_equal
from ..protocol.dedupe import DedupeCache
from ..protocol.events import EventGate
from ..protocol.frames import PreparedEvent
from ..protocol.handshake import CLOSE_AUTH_CHANGED, CLOSE_RESTART
from ..protocol.presence import PresenceTable
from ..protocol.ratelimit import SlidingWindow
from ..protocol.scopes import ADMIN, scope_satisfied
from ..service.tls import server_ssl_context
from ..store import StateStore, gateway_state
from .agent_service import AgentService
from .broadcaster import Broadcaster
from .connection import Connection
from .health import HealthMonitor
from .heartbeat import HeartbeatRunner, format_every
from .http import add_http_routes
from .idempotency import IdempotentCalls
from .methods import build_registry
from .methods.config import WRITE_WINDOW_MS, WRITES_PER_WINDOW
from .metrics import GatewayMetrics
from .pairing import PairingService
from .plugin_side import PluginSide
from .settings import GatewaySettings
from .system_events import SystemEventQueue

__all__ = ["GatewayServer"]

logger = logging.getLogger(__name__)

DEFAULT_AGENT_ID = "main"
MAIN_KEY = "main"
# Modes that do not appear in the presence list (spec §8.8).
_QUIET_MODES = frozenset({"cli", "probe"})


def wall_clock_ms() -> int:
    """Return the wall clock in Unix milliseconds."""
    return time.time_ns() // 1_000_000


class GatewayServer:
    """One gateway process: HTTP + WebSocket, broadcasts, health, heartbeat."""

    def __init__(
        self, settings: GatewaySettings, *, clock: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.auth = settings.auth
        self.allowed_origins = settings.allowed_origins
        self.now_ms = clock
        self.boot_id = str(uuid.uuid4())
        self.started_ms = clock()
        self.ready = False
        self.stopping = False
        self.registry = build_registry()
        self.metrics = GatewayMetrics()
        self.throttle = AuthThrottle(self.limits)
        self.idempotent = IdempotentCalls(DedupeCache(self.limits), clock)
        self.broadcaster = Broadcaster()
        self.system_events = SystemEventQueue()
        self.presence = PresenceTable(self._self_presence(), self.limits.presence_expiry_ms)
        self.health = HealthMonitor(self._build_health, clock, self._announce_health)
        self.heartbeats = HeartbeatRunner(
            self._heartbeat_turn, settings.heartbeat_every_s, self._announce_heartbeat
        )
        # Replaced by a per-install key from the state store when one is attached.
        self.config_hash_key = secrets.token_bytes(32)
        self.config_writes = SlidingWindow(WRITES_PER_WINDOW, WRITE_WINDOW_MS)
        self.config_lock = asyncio.Lock()
        self.store: StateStore | None = None
        self.pairing = PairingService(self)
        self.plugins: PluginSide | None = None
        self.agents: AgentService | None = None
        self._handshaking: set[Connection] = set()
        self._unauthenticated_by_ip: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    # -- start and stop ---------------------------------------------------------

    async def start(self) -> None:
        """Open the state store, bind the port, start the background services, become ready.

        Raises:
            StoreError: the state database cannot be used (e.g. written by a newer clawgate).
            OSError: the port cannot be bound.
            ssl.SSLError: the TLS material cannot be loaded.
        """
        tls = self.settings.tls
        ssl_context = server_ssl_context(tls) if tls is not None else None
        if self.settings.state_db is not None:
            await self._open_store(self.settings.state_db)
            await self.pairing.load()
            assert self.store is not None
            backend, plugin_handlers = build_backend(self.settings.agent, self._plugin_registry)
            self.agents = AgentService(
                store=self.store,
                settings=self.settings.agent,
                backend=backend,
                broadcaster=self.broadcaster,
                clock=self.now_ms,
            )
            await self.agents.start()
            if self.settings.ipc_socket is not None:
                self.plugins = PluginSide(
                    store=self.store,
                    socket_path=self.settings.ipc_socket,
                    settings=self.settings.plugins,
                    clock=self.now_ms,
                    uptime_ms=self.uptime_ms,
                    link=self.settings.cloud,
                    on_cloud_status=self._announce_cloud_status,
                    handlers=plugin_handlers,
                )
                await self.plugins.start()
        app = web.Application()
        add_http_routes(app, self)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.settings.host, self.settings.port, ssl_context=ssl_context
        )
        await site.start()
        self.port = self._bound_port()
        self.health.refresh()
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self.health.run(self.limits.health_refresh_ms / 1000)),
            asyncio.create_task(self.heartbeats.run(), name="heartbeat"),
        ]
        self.ready = True
        logger.info("gateway ready on %s:%d (boot %s)", self.settings.host, self.port, self.boot_id)

    async def stop(self, *, restarting: bool = False, restart_expected_ms: int = 0) -> None:
        """Announce `shutdown`, drain for at most the policy's bound, close 1012, unbind."""
        if self.stopping:
            return
        self.stopping = True
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.agents is not None:
            # Before `shutdown`: clients see every run end (aborted) while still connected.
            await self.agents.stop()
        reason = "gateway restarting" if restarting else "gateway stopping"
        expected = restart_expected_ms if restarting else None
        by_protocol = {
            3: PreparedEvent.build(
                "shutdown",
                {"reason": reason} | ({} if expected is None else {"restartExpectedMs": expected}),
            ),
            4: PreparedEvent.build("shutdown", {"reason": reason, "restartExpectedMs": expected}),
        }
        connections = list(self.broadcaster)
        for connection in connections:
            connection.send_event(by_protocol[connection.protocol])
        logger.info("shutting down: %s (%d connections)", reason, len(connections))
        try:
            async with asyncio.timeout(self.limits.shutdown_drain_ms / 1000):
                await asyncio.gather(*(c.wait_drained() for c in connections))
        except TimeoutError:
            logger.warning("shutdown drain bound reached; closing with frames still queued")
        await asyncio.gather(
            *(c.close_gracefully(CLOSE_RESTART, "service restart") for c in connections),
            *(c.abort_handshake(CLOSE_RESTART, "service restart") for c in self._handshaking),
            return_exceptions=True,
        )
        if self._runner is not None:
            await self._runner.cleanup()
        if self.plugins is not None:
            await self.plugins.stop()
        if self.store is not None:
            await self.store.close()
        logger.info("gateway stopped")

    async def _open_store(self, path: Path) -> None:
        store = StateStore(path)
        self.store = store
        await store.open()

        def load(conn: Any) -> tuple[str | None, str | None, list[dict[str, Any]]]:
            return (
                gateway_state.get_value(conn, "config_hash_key"),
                gateway_state.get_value(conn, "heartbeats_enabled"),
                gateway_state.load_system_events(conn),
            )

        hash_key, heartbeats_enabled, events = await store.read(load)
        if hash_key is None:
            # Per install, so a baseHash read before a restart still matches after it.
            hash_key = secrets.token_hex(32)
            await store.write(
                lambda conn: gateway_state.set_value(conn, "config_hash_key", hash_key)
            )
        self.config_hash_key = bytes.fromhex(hash_key)
        if heartbeats_enabled is not None:
            self.heartbeats.enabled = heartbeats_enabled == "true"
        for event in events:
            self.system_events.push(event["text"], event["ts"])

    def _bound_port(self) -> int:
        assert self._runner is not None
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return self.settings.port

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to."""
        host = self.settings.host
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"  # asyncio binds "::" IPv6-only
        elif ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.settings.tls is not None else "ws"
        return f"{scheme}://{host}:{self.port}/"

    # -- connections --------------------------------------------------------------

    def admission_refusal(self, remote_ip: str) -> str | None:
        """Return why a new upgrade must be refused with 503, or None."""
        if self.stopping:
            return "gateway stopping"
        if len(self._handshaking) + len(self.broadcaster) >= self.limits.max_connections:
            return "too many connections"
        if self._unauthenticated_by_ip[remote_ip] >= self.limits.max_unauthenticated_per_ip:
            return "too many unauthenticated connections from this address"
        return None

    async def serve_socket(self, connection: Connection) -> None:
        """Serve one upgraded socket for its whole life."""
        self._handshaking.add(connection)
        self._unauthenticated_by_ip[connection.remote_ip] += 1
        try:
            await connection.serve()
        finally:
            self._leave_handshake(connection)

    def _leave_handshake(self, connection: Connection) -> None:
        if connection in self._handshaking:
            self._handshaking.discard(connection)
            self._unauthenticated_by_ip[connection.remote_ip] -= 1
            if self._unauthenticated_by_ip[connection.remote_ip] <= 0:
                del self._unauthenticated_by_ip[connection.remote_ip]

    def welcome(
        self,
        connection: Connection,
        device_token: str | None = None,
        token_issued_at_ms: int | None = None,
    ) -> dict[str, Any]:
        """Take the snapshot and register for broadcasts in one step; return `hello-ok`.

        No await may run between the snapshot and `broadcaster.add`, or an event could
        fall between them and the client would never see it.
        """
        self._leave_handshake(connection)
        snapshot = self._snapshot(connection)
        self.broadcaster.add(connection)
        self.metrics.connections.set(len(self.broadcaster))
        registry = self.registry
        policy = {
            "maxPayload": self.limits.max_payload,
            "maxBufferedBytes": self.limits.max_buffered_bytes,
            "tickIntervalMs": self.limits.tick_interval_ms,
        }
        auth: dict[str, Any] = {"role": connection.role.value, "scopes": list(connection.scopes)}
        if device_token is not None:
            auth["deviceToken"] = device_token
            auth["issuedAtMs"] = token_issued_at_ms
        if connection.protocol == 3:
            hello: dict[str, Any] = {
                "type": "hello-ok",
                "protocol": 3,
                "server": {"version": __version__, "connId": connection.conn_id},
                "features": {
                    "methods": registry.method_names(),
                    "events": registry.event_names(),
                },
                "snapshot": snapshot,
                "policy": policy,
            }
            if device_token is not None:
                # Protocol 3 sends an auth block only with a device token, token first.
                hello["auth"] = {
                    "deviceToken": device_token,
                    "role": auth["role"],
                    "scopes": auth["scopes"],
                    "issuedAtMs": token_issued_at_ms,
                }
            return hello
        return {
            "type": "hello-ok",
            "protocol": 4,
            "server": {
                "version": __version__,
                "connId": connection.conn_id,
                "bootId": self.boot_id,
            },
            "features": {
                "methods": registry.method_names(),
                "events": registry.event_names(),
                "capabilities": [],
            },
            "snapshot": snapshot,
            "auth": auth,
            "policy": policy,
        }

    def joined(self, connection: Connection) -> None:
        """Add a new connection's presence entry and announce it."""
        client = connection.client
        if client is None or client.mode in _QUIET_MODES:
            return
        key = client.instanceId or connection.device_id or connection.conn_id
        connection.presence_key = key
        entry: dict[str, Any] = {
            "ts": connection.connected_at_ms,
            "ip": connection.remote_ip,
            "version": client.version,
            "platform": client.platform,
            "mode": client.mode,
            "reason": "connect",
            "roles": [connection.role.value],
            "scopes": list(connection.scopes),
        }
        optional = {
            "host": client.displayName,
            "deviceFamily": client.deviceFamily,
            "modelIdentifier": client.modelIdentifier,
            "deviceId": connection.device_id,
            "instanceId": client.instanceId,
        }
        entry.update({name: value for name, value in optional.items() if value is not None})
        self.presence.upsert(key, entry)
        self.announce_presence()

    def left(self, connection: Connection) -> None:
        """Forget a closed connection and announce its presence entry's removal."""
        self.broadcaster.remove(connection)
        self.metrics.connections.set(len(self.broadcaster))
        if self.agents is not None:
            self.agents.forget_connection(connection.conn_id)
        key = connection.presence_key
        still_present = any(other.presence_key == key for other in self.broadcaster)
        if key is not None and not still_present and self.presence.remove(key):
            self.announce_presence()

    # -- configuration ------------------------------------------------------------

    def apply_config(self, config: ClawgateConfig, changed_by: Connection | None = None) -> None:
        """Apply the settings that take effect without a restart.

        A new shared secret closes every connection that logged in with the old one
        (4001); `changed_by` is closed only after its own answer was queued.
        """
        self.allowed_origins = frozenset(config.gateway.allowed_origins)
        self.heartbeats.every_s = config.gateway.heartbeat_every_s
        logging.getLogger("clawgate").setLevel(config.log.level.upper())
        auth = config.gateway.auth
        if self.settings.auth_pinned or auth.mode is not self.auth.mode:
            return  # a pinned secret stays; a mode change needs a restart
        secret = auth.token if auth.mode is AuthMode.TOKEN else auth.password
        if auth.mode is AuthMode.NONE or not secret or self.auth.secret is None:
            return
        if secrets_equal(secret, self.auth.secret):
            return
        self.auth = SharedSecretAuth(auth.mode, secret)
        logger.warning("shared secret changed; closing connections that used the old one")
        # After the current step, so the response to the changing request is queued first.
        for connection in self.broadcaster:
            if connection.via_device_token:
                continue  # device tokens stay valid when the shared secret changes
            if connection is changed_by:
                connection.close_after_answer(CLOSE_AUTH_CHANGED, "gateway auth changed")
            else:
                connection.close(CLOSE_AUTH_CHANGED, "gateway auth changed")

    # -- state and events ---------------------------------------------------------

    def state_version(self) -> dict[str, int]:
        """Return the presence and health counters."""
        return {"presence": self.presence.version, "health": self.health.version}

    def uptime_ms(self) -> int:
        """Return milliseconds since start."""
        return max(self.now_ms() - self.started_ms, 0)

    def _snapshot(self, connection: Connection) -> dict[str, Any]:
        snapshot: dict[str, Any] = {
            "presence": self.presence.entries(),
            "health": self.health.summary,
            "stateVersion": self.state_version(),
            "uptimeMs": self.uptime_ms(),
            "sessionDefaults": {
                "defaultAgentId": DEFAULT_AGENT_ID,
                "mainKey": MAIN_KEY,
                "mainSessionKey": f"agent:{DEFAULT_AGENT_ID}:{MAIN_KEY}",
                "scope": "per-sender",
            },
            "authMode": self.auth.mode.value,
        }
        if scope_satisfied(connection.scopes, ADMIN) and connection.role.value == "operator":
            if self.settings.config_path is not None:
                snapshot["configPath"] = str(self.settings.config_path)
            snapshot["stateDir"] = str(self.settings.home)
        return snapshot

    def announce_presence(self) -> None:
        """Broadcast the whole presence list to operators."""
        self.broadcaster.broadcast(
            "presence",
            {"presence": self.presence.entries()},
            EventGate.OPERATORS,
            state_version=self.state_version(),
        )

    def _announce_health(self, summary: dict[str, Any]) -> None:
        self.broadcaster.broadcast(
            "health", summary, EventGate.ALL, state_version=self.state_version()
        )

    def _announce_heartbeat(self, event: dict[str, Any]) -> None:
        self.broadcaster.broadcast("heartbeat", event, EventGate.READ)

    def _self_presence(self) -> dict[str, Any]:
        return {
            "ts": self.started_ms,
            "host": socket.gethostname(),
            "version": __version__,
            "platform": sys.platform,
            "mode": "gateway",
            "reason": "self",
        }

    def heartbeat_schedule(self) -> dict[str, Any]:
        """Return the default agent's heartbeat switch and cadence."""
        every_s = self.heartbeats.every_s
        return {
            "enabled": self.heartbeats.enabled,
            "every": format_every(every_s),
            "everyMs": every_s * 1000,
        }

    def session_counts(self) -> dict[str, Any]:
        """Return how many chat sessions exist and the most recently updated ones."""
        if self.agents is None:
            return {"count": 0, "recent": []}
        return self.agents.sessions.counts()

    def _plugin_registry(self) -> PluginRegistry | None:
        return self.plugins.registry if self.plugins is not None else None

    def _announce_cloud_status(self, status: dict[str, Any]) -> None:
        self.broadcaster.broadcast("cloud.status", status, EventGate.READ)

    def _build_health(self) -> dict[str, Any]:
        sessions = self.session_counts()
        return {
            "ok": True,
            "ts": 0,
            "durationMs": 0,
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": self.heartbeats.every_s,
            "defaultAgentId": DEFAULT_AGENT_ID,
            "agents": [
                {
                    "agentId": DEFAULT_AGENT_ID,
                    "isDefault": True,
                    "heartbeat": self.heartbeat_schedule(),
                    "sessions": sessions,
                }
            ],
            "sessions": sessions,
        }

    async def _heartbeat_turn(self) -> dict[str, Any]:
        # No agent backend is configured in this build, so a heartbeat has nobody to run.
        return {"ts": self.now_ms(), "status": "skipped", "reason": "no-agent"}

    async def _tick_loop(self) -> None:
        interval = self.limits.tick_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            now = self.now_ms()
            self.broadcaster.broadcast("tick", {"ts": now}, EventGate.ALL)
            self.throttle.prune(now)
            if self.presence.expire(now):
                self.announce_presence()
