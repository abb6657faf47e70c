"""The gateway server: composes the services and serves HTTP and WebSocket on one port.

Start order (each step may use what the steps before it started):
1. the state store (state.db), then what it restores: the config hash key, the heartbeat
   switch, queued system events, paired devices;
2. the agent service (sessions, runs), the channels (WebChat and each configured
   messaging account, each a supervised task), the cron jobs (runs cut off by a crash are
   marked interrupted; the scheduler is built only when state.db has cron rows) and the
   plugin side (hub clock, command queue and router, reconciler, IPC socket, control link);
3. the HTTP site on the gateway port, the canvas host on its own port when `[canvas]` is
   on (its root watcher in the task group), then the first health summary;
4. the gateway's own loops (tick, health refresh, heartbeat, cron timer), then `ready`.
Every long-running loop — the gateway's, and those the services start (IPC accept, command
expiry, reconciliation passes, the control link) — runs in one `asyncio.TaskGroup` owned by
a supervisor task: a loop that dies takes the group down, the failure is logged, and
`wait_failed()` returns, so the process stops loudly instead of running half-alive.
Stop runs the other way, bounded in time: stop admitting and cancel the gateway's loops,
stop the channel accounts, end the agent runs (clients see them end) and let cron record
how its runs ended, announce `shutdown`, drain, close with 1012, unbind, stop the canvas
host, stop the plugin side, close the store, and last let the task group end.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import __version__
from ..agents.factory import build_backend
from ..automation.delivery import DeliveryRouter
from ..ipc import PluginRegistry
from ..protocol.auth import AuthThrottle
from ..protocol.dedupe import DedupeCache
from ..protocol.hello import DEFAULT_AGENT_ID
from ..protocol.limits import NODE_INVOKE_MAX_PENDING
from ..protocol.nodes import CommandPolicy
from ..protocol.presence import PresenceTable
from ..protocol.scopes import Role
from ..store import StateStore
from ..tls import server_ssl_context
from .access import GatewayAccess
from .agent_service import AgentService
from .automation import AgentTurns, ChannelDelivery
from .broadcaster import Broadcaster
from .channel_service import ChannelService
from .config_service import ConfigService
from .connection import Connection, ConnectionDeps
from .connections import ConnectionTable
from .cron_host import CronHost
from .dispatcher import DispatchTable
from .exec_approvals import ExecApprovals
from .greeter import Greeter
from .health import HealthMonitor
from .heartbeat import HeartbeatRunner
from .http import HttpSurface, add_http_routes
from .http import PageSurface as HttpPageSurface
from .http_admission import GuardedServer, OneLineLogger
from .http_guard import HttpGuard
from .idempotency import IdempotentCalls
from .methods import build_registry
from .metrics import GatewayMetrics
from .nodes import NodeService
from .pairing import PairingService
from .plugin_side import PluginSide
from .presence import PresenceService
from .services import GatewayInfo, Services
from .settings import GatewaySettings
from .system_events import SystemEvents

if TYPE_CHECKING:  # loaded only when used
    from ..canvas.server import CanvasHost
    from .hooks import HookService

__all__ = ["BackgroundFailure", "GatewayServer"]

logger = logging.getLogger(__name__)


class BackgroundFailure(RuntimeError):
    """A background loop of the gateway died; the process must stop (the log says why)."""


def wall_clock_ms() -> int:
    """Return the wall clock in Unix milliseconds."""
    return time.time_ns() // 1_000_000


class GatewayServer:
    """One gateway process: composes the services, binds the port, runs the loops."""

    def __init__(
        self, settings: GatewaySettings, *, clock: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.settings = settings
        self.limits = limits = settings.limits
        self.now_ms = clock
        self.port = settings.port
        self.info = GatewayInfo(
            boot_id=str(uuid.uuid4()),
            started_ms=clock(),
            clock=clock,
            home=settings.home,
            agent=settings.agent,
            log_file=settings.log_file,
        )
        self.store = StateStore(settings.state_db) if settings.state_db is not None else None
        self.methods = build_registry()
        self.metrics = GatewayMetrics()
        self.broadcaster: Broadcaster[Connection] = Broadcaster(self.methods.events())
        self.access = GatewayAccess(
            auth=settings.auth,
            throttle=AuthThrottle(limits),
            allowed_origins=settings.allowed_origins,
            auth_pinned=settings.auth_pinned,
            auto_approve_loopback=settings.auto_approve_loopback,
        )
        self.presence = PresenceService(
            PresenceTable(self._self_presence(), limits.presence_expiry_ms),
            self.broadcaster,
            self.state_version,
        )
        self.health = HealthMonitor(self._build_health, clock, self._announce_health)
        self.system_events = SystemEvents(self.store)
        # Replies of heartbeats and cron jobs: every channel (WebChat included) once the
        # channel service is built.
        self.delivery = DeliveryRouter()
        self.turns = AgentTurns(self._agent_service)
        self.heartbeats = HeartbeatRunner(
            settings=settings.heartbeat,
            zone=settings.timezone,
            clock=clock,
            on_heartbeat=self._announce_heartbeat,
            agent=self.turns,
            system_events=self.system_events,
            delivery=self.delivery,
            workspace=settings.workspace or settings.home / "workspace",
            store=self.store,
        )
        self.pairing = PairingService(self.store, self.broadcaster, self._sockets, clock)
        self.config = ConfigService(
            path=settings.config_path,
            store=self.store,
            access=self.access,
            heartbeats=self.heartbeats,
            sockets=self._sockets,
        )
        self.idempotent = IdempotentCalls(DedupeCache(limits), clock)
        self.http_guard = HttpGuard(self.access, self.pairing, clock, limits.auth_failure_delay_ms)
        self.canvas = self._build_canvas()
        self.nodes = NodeService(
            store=self.store,
            broadcaster=self.broadcaster,
            clock=clock,
            pairing=lambda: self.pairing.registry,
            policy=CommandPolicy(settings.nodes.allow_commands, settings.nodes.deny_commands),
            approvals=ExecApprovals(
                self.store, self.broadcaster, clock, settings.nodes.approval_timeout_ms
            ),
            max_pending=NODE_INVOKE_MAX_PENDING,
        )
        self.connections = ConnectionTable(
            limits=limits,
            broadcaster=self.broadcaster,
            presence=self.presence,
            greeter=Greeter(
                methods=self.methods,
                info=self.info,
                limits=limits,
                access=self.access,
                presence=self.presence,
                health=self.health,
                state_version=self.state_version,
                config_path=settings.config_path,
                canvas=self.canvas,
            ),
            metrics=self.metrics,
            on_left=self._forget_connection,
            on_joined=self.nodes.joined,
        )
        # Built once the store is open: they read it from their first step.
        self.agents: AgentService | None = None
        self.channels: ChannelService | None = None
        self.cron: CronHost | None = None
        self.plugins: PluginSide | None = None
        self.hooks: HookService | None = None
        self.services: Services | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._released = asyncio.Event()  # set last in `stop`: the task group may end
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    # -- start and stop ---------------------------------------------------------

    @property
    def boot_id(self) -> str:
        """This process's boot id (`hello-ok.server.bootId`)."""
        return self.info.boot_id

    @property
    def ready(self) -> bool:
        """Whether the gateway admits handshakes."""
        return self.connections.ready

    @property
    def stopping(self) -> bool:
        """Whether the gateway is shutting down."""
        return self.connections.stopping

    async def start(self) -> None:
        """Open the store, start the services, bind the port, run the loops, become ready.

        Raises:
            StoreError: the state database cannot be used (e.g. written by a newer clawgate).
            OSError: the port cannot be bound.
            ssl.SSLError: the TLS material cannot be loaded.
        """
        tls = self.settings.tls
        ssl_context = server_ssl_context(tls) if tls is not None else None
        try:
            group = await self._start_supervisor()
            services = await self._start_services(group)
            await self._serve_http(services, ssl_context)
            if self.canvas is not None:
                await self.canvas.start(group.create_task)
            self.health.refresh()
            self._loops = [
                group.create_task(self._tick_loop(), name="tick"),
                group.create_task(self.presence.run(), name="presence"),
                group.create_task(
                    self.health.run(self.limits.health_refresh_ms / 1000), name="health"
                ),
                group.create_task(self.heartbeats.run(), name="heartbeat"),
            ]
            if self.cron is not None:
                self.cron.start(
                    lambda loop: self._loops.append(group.create_task(loop, name="cron"))
                )
        except BaseException:
            await self.stop()  # what started stops again, and the task group ends
            raise
        self.connections.ready = True
        logger.info(
            "gateway ready on %s:%d (boot %s)", self.settings.host, self.port, self.info.boot_id
        )

    async def _start_services(self, group: asyncio.TaskGroup) -> Services:
        """Open the store and what it restores, then the agent and plugin sides."""
        if self.store is not None:
            await self.store.open()
            await self.config.load()
            await self.heartbeats.load()
            await self.system_events.load()
            await self.pairing.load()
            await self.nodes.load()
            await self.nodes.approvals.load()
            self._build_plugin_and_agent_sides(self.store)
        self.services = Services(
            info=self.info,
            clock=self.now_ms,
            limits=self.limits,
            presence=self.presence,
            health=self.health,
            heartbeats=self.heartbeats,
            system_events=self.system_events,
            pairing=self.pairing,
            config=self.config,
            agents=self.agents,
            plugins=self.plugins,
            delivery=self.delivery,
            cron=self.cron,
            canvas=self.canvas,
            nodes=self.nodes,
            channels=self.channels,
        )
        if self.agents is not None:
            await self.agents.start()
        if self.channels is not None:
            await self.channels.start(group.create_task)
        if self.cron is not None:
            await self.cron.prepare()
        if self.plugins is not None:
            await self.plugins.start(group.create_task)
        return self.services

    async def _serve_http(self, services: Services, ssl_context: ssl.SSLContext | None) -> None:
        """Bind the gateway port: ops endpoints, WebChat and the WebSocket API."""
        deps = ConnectionDeps(
            limits=self.limits,
            clock=self.now_ms,
            access=self.access,
            pairing=self.pairing,
            nodes=self.nodes,
            metrics=self.metrics,
            dispatch=DispatchTable(
                methods=self.methods,
                services=services,
                idempotent=self.idempotent,
                metrics=self.metrics,
                limits=self.limits,
            ),
            lobby=self.connections,
        )
        app = web.Application()
        add_http_routes(
            app,
            connections=self.connections,
            deps=deps,
            info=self.info,
            tls=ssl_context is not None,
            surfaces=self._http_surfaces(),
            pages=self._control_ui(ssl_context is not None),
            channels=self.channels,
        )
        limits = self.settings.limits
        self.http_door = GuardedServer(
            read_timeout_ms=limits.http_read_timeout_ms,
            per_ip=limits.http_max_connections_per_ip,
        )
        app.middlewares.append(self.http_door.request_read)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            logger=OneLineLogger(logging.getLogger("clawgate.gateway.http")),
        )
        await self._runner.setup()
        self._listener = await self.http_door.listen(
            self._runner, host=self.settings.host, port=self.settings.port, ssl_context=ssl_context
        )
        self.port = self._bound_port()

    def _build_canvas(self) -> CanvasHost | None:
        """Build the canvas host when `[canvas]` is on; its modules load only then."""
        settings = self.settings.canvas
        if settings is None:
            return None
        from ..canvas.access import CanvasAccess
        from ..canvas.server import CanvasHost

        access = CanvasAccess(
            self.access,
            self._device_token_ok,
            failure_delay_ms=self.limits.auth_failure_delay_ms,
        )
        return CanvasHost(
            settings, access=access, clock=self.now_ms, limits=self.limits, tls=self.settings.tls
        )

    def _device_token_ok(self, device_id: str, token: str) -> bool:
        registry = self.pairing.registry  # replaced on load: read it at each check
        return any(registry.token_matches(device_id, role.value, token) for role in Role)

    def _build_plugin_and_agent_sides(self, store: StateStore) -> None:
        settings = self.settings
        backend, plugin_handlers = build_backend(settings.agent, self._plugin_registry)
        self.agents = AgentService(
            store=store,
            settings=settings.agent,
            backend=backend,
            broadcaster=self.broadcaster,
            clock=self.now_ms,
        )
        self.channels = ChannelService(
            agents=self.agents,
            broadcaster=self.broadcaster,
            store=store,
            settings=settings.channels,
            home=settings.home,
            clock=self.now_ms,
            guard=self.http_guard,
        )
        self.metrics.channel_counters = self.channels.counters
        for channel in self.channels.channel_names():
            self.delivery.add(channel, ChannelDelivery(self.channels))
        self.cron = CronHost(
            store=store,
            clock=self.now_ms,
            announce=self._announce_cron,
            default_tz=settings.timezone,
            enabled=settings.cron_enabled,
            turns=self.turns,
            system_events=self.system_events,
            heartbeats=self.heartbeats,
            delivery=self.delivery,
            metrics=self.metrics,
        )
        if settings.ipc_socket is not None:
            self.plugins = PluginSide(
                store=store,
                socket_path=settings.ipc_socket,
                settings=settings.plugins,
                clock=self.now_ms,
                uptime_ms=self.info.uptime_ms,
                link=settings.cloud,
                on_cloud_status=self._announce_cloud_status,
                handlers=plugin_handlers,
            )

    def _http_surfaces(self) -> list[HttpSurface]:
        """Return the enabled HTTP surfaces; each needs the agents, so a state store."""
        # Imported when enabled: a gateway that serves neither does not pay their memory.
        settings = self.settings
        surfaces: list[HttpSurface] = []
        if self.agents is not None and settings.openai_http.enabled:
            from .openai_api import OpenAIApi

            surfaces.append(
                OpenAIApi(
                    agents=self.agents,
                    guard=self.http_guard,
                    settings=settings.openai_http,
                    agent=settings.agent,
                    clock=self.now_ms,
                )
            )
        if self.agents is not None and settings.hooks.enabled:
            from .hooks import HookService

            self.hooks = HookService(
                settings=settings.hooks,
                secrets=settings.hook_secrets,
                agents=self.agents,
                agent=settings.agent,
                system_events=self.system_events,
                heartbeats=self.heartbeats,
                guard=self.http_guard,
                idempotent=self.idempotent,
                delivery=self.delivery,
                clock=self.now_ms,
            )
            surfaces.append(self.hooks)
        if self.channels is not None and self.channels.has_platforms:
            surfaces.append(self.channels)  # platform webhooks (Telegram's webhook mode)
        return surfaces

    def _control_ui(self, tls: bool) -> HttpPageSurface | None:
        """Return the Control UI pages when `[gateway] control_ui_root` is set (imported then)."""
        root = self.settings.control_ui_root
        if root is None:
            return None
        from .control_ui import ControlUi

        return ControlUi(root, agent=self.settings.agent, version=__version__, tls=tls)

    async def _start_supervisor(self) -> asyncio.TaskGroup:
        """Open the task group every background loop runs in, held by a supervisor task."""
        opened: asyncio.Future[asyncio.TaskGroup] = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(opened), name="gateway-tasks")
        self._group = await opened
        return self._group

    async def _supervise(self, opened: asyncio.Future[asyncio.TaskGroup]) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                opened.set_result(group)
                await self._released.wait()
        except Exception:
            # A loop that dies takes the others down with it; say so rather than go quiet.
            logger.critical("a background loop failed; the gateway must stop", exc_info=True)
            raise

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coro` in the gateway's task group until it ends or `stop()` cancels it."""
        if self._group is None or self.connections.stopping:
            coro.close()
            return
        self._loops.append(self._group.create_task(coro, name=name))

    async def wait_failed(self) -> None:
        """Return when the background task group ends on its own, which only a failure does."""
        if self._supervisor is not None:
            # asyncio.wait, not gather: cancelling this waiter must not cancel the supervisor.
            await asyncio.wait({self._supervisor})

    async def stop(self, *, restarting: bool = False, restart_expected_ms: int = 0) -> None:
        """Announce `shutdown`, drain for at most the policy's bound, close 1012, unbind."""
        connections = self.connections
        if connections.stopping:
            return
        connections.stopping = True
        connections.ready = False
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self.hooks is not None:
            await self.hooks.stop()
        if self.channels is not None:
            # Before the agents: a channel turn cut short here runs again at the next start.
            await self.channels.stop()
        if self.agents is not None:
            # Before `shutdown`: clients see every run end (aborted) while still connected.
            await self.agents.stop()
        if self.cron is not None:
            await self.cron.stop()  # its runs record how they ended before the store closes
        reason = "gateway restarting" if restarting else "gateway stopping"
        await connections.close_all(reason, restart_expected_ms if restarting else None)
        if self._listener is not None:
            self._listener.close()  # stop accepting; the runner's cleanup closes the connections
        if self._runner is not None:
            await self._runner.cleanup()
        if self.canvas is not None:
            await self.canvas.stop()
        if self.plugins is not None:
            await self.plugins.stop()
        if self.store is not None:
            await self.store.close()
        self._released.set()
        if self._supervisor is not None:
            await asyncio.gather(self._supervisor, return_exceptions=True)
        logger.info("gateway stopped")

    def _bound_port(self) -> int:
        assert self._listener is not None
        for sock in self._listener.sockets:
            address = sock.getsockname()
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

    # -- wiring between services ------------------------------------------------------

    def _sockets(self) -> Broadcaster[Connection]:
        return self.broadcaster

    def _agent_service(self) -> AgentService | None:
        return self.agents

    def _plugin_registry(self) -> PluginRegistry | None:
        return self.plugins.registry if self.plugins is not None else None

    def _forget_connection(self, conn_id: str) -> None:
        self.nodes.left(conn_id)
        if self.agents is not None:
            self.agents.forget_connection(conn_id)

    def state_version(self) -> dict[str, int]:
        """Return the presence and health counters."""
        return {"presence": self.presence.version, "health": self.health.version}

    def uptime_ms(self) -> int:
        """Return milliseconds since start."""
        return self.info.uptime_ms()

    def session_counts(self) -> dict[str, Any]:
        """Return how many chat sessions exist and the most recently updated ones."""
        if self.agents is None:
            return {"count": 0, "recent": []}
        return self.agents.sessions.counts()

    def _announce_health(self, summary: dict[str, Any]) -> None:
        self.broadcaster.broadcast("health", summary, state_version=self.state_version())

    def _announce_heartbeat(self, event: dict[str, Any]) -> None:
        self.broadcaster.broadcast("heartbeat", event)

    def _announce_cron(self, event: dict[str, Any]) -> None:
        self.broadcaster.broadcast("cron", event)

    def _announce_cloud_status(self, status: dict[str, Any]) -> None:
        self.broadcaster.broadcast("cloud.status", status)

    def _self_presence(self) -> dict[str, Any]:
        return {
            "ts": self.info.started_ms,
            "host": socket.gethostname(),
            "version": __version__,
            "platform": sys.platform,
            "mode": "gateway",
            "reason": "self",
        }

    def _build_health(self) -> dict[str, Any]:
        sessions = self.session_counts()
        channels = self.channels.health_channels() if self.channels is not None else {}
        return {
            "ok": True,
            "ts": 0,
            "durationMs": 0,
            "channels": channels,
            "channelOrder": list(channels),
            "channelLabels": {name: name.capitalize() for name in channels},
            "heartbeatSeconds": self.heartbeats.every_s,
            "defaultAgentId": DEFAULT_AGENT_ID,
            "agents": [
                {
                    "agentId": DEFAULT_AGENT_ID,
                    "isDefault": True,
                    "heartbeat": self.heartbeats.schedule(),
                    "sessions": sessions,
                }
            ],
            "sessions": sessions,
        }

    async def _tick_loop(self) -> None:
        interval = self.limits.tick_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            now = self.now_ms()
            self.broadcaster.broadcast("tick", {"ts": now})
            self.access.throttle.prune(now)
            self.presence.expire(now)
