"""The control link: one outbound WebSocket from the daemon to the hub (control-plane spec §3).

``ControlLink`` only moves messages. What they mean is the ``LinkDelegate``'s business (the
gateway's command path and reconciler), and when to reconnect is ``reconnect_plan``'s, a
pure function of how the last attempt ended. The API key goes only into the upgrade
request's ``Authorization`` header: never into the URL, a frame or a log line (§3.1).

Invariant: a terminal COMMAND_ACK is marked sent only after the writer has handed it to a
connected socket; anything not marked is sent again after the next SERVICE_ACK (§3.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from .. import __version__
from ..protocol.control_link import (
    CLOSE_PROTOCOL_VIOLATION,
    CLOSE_SERVICE_RESTART,
    CLOSE_SESSION_REPLACED,
    CLOSE_UNAUTHORIZED,
    CLOSE_UPGRADE_REQUIRED,
    DEFAULT_MAX_MESSAGE_BYTES,
    InvalidMessage,
    MessageType,
    ServiceAck,
    dead_after_ms,
    envelope,
    parse_envelope,
    parse_payload,
)
from ..protocol.timefmt import format_time, parse_time
from .settings import LinkSettings

__all__ = [
    "ControlLink",
    "LinkDelegate",
    "LinkSettings",
    "LinkState",
    "ReconnectPlan",
    "check_url",
    "reconnect_plan",
]

logger = logging.getLogger(__name__)

REGISTER_ACK_TIMEOUT_S: Final = 10.0
BACKOFF_BASE_S: Final = 1.0
BACKOFF_CAP_S: Final = 60.0
STABLE_AFTER_S: Final = 60.0
_CAP_EXPONENT: Final = 6  # 2**6 s >= the cap: the backoff window stays at 60 s
CLOCK_SKEW_WARN_MS: Final = 30_000
MAX_COMMANDS_IN_PROGRESS: Final = 256  # COMMANDs read ahead while earlier ones commit
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


class LinkState(enum.StrEnum):
    """The link's state (§3.8)."""

    DISABLED = "disabled"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    LOGIN_REQUIRED = "login_required"
    UPGRADE_REQUIRED = "upgrade_required"


class LinkDelegate(Protocol):
    """What the link needs from the daemon."""

    def register_payload(self) -> dict[str, Any]:
        """Return the SERVICE_REGISTER payload."""
        ...

    def clock_offset(self, offset_ms: int) -> None:
        """Record ``serverTime - local time`` (hub time = local time + offset)."""
        ...

    async def command(self, payload: Any) -> dict[str, Any] | None:
        """Process a COMMAND payload; return its COMMAND_ACK payload, or None to ignore it."""
        ...

    async def desired_state(self, payload: Any) -> None:
        """Take a DESIRED_STATE payload."""
        ...

    def unsent_acks(self) -> list[dict[str, Any]]:
        """Return terminal acks never written to a link, oldest first."""
        ...

    async def ack_sent(self, command_id: str) -> None:
        """Record that a terminal ack was written to a connected link."""
        ...

    def last_report(self) -> dict[str, Any] | None:
        """Return the last RECONCILIATION_REPORT, for the re-send after SERVICE_ACK."""
        ...

    def state_changed(self, state: LinkState, since: float, session_id: str | None) -> None:
        """Hear about every state change (plugins get ``cloud.status``)."""
        ...


def check_url(url: str, allow_insecure: bool) -> str | None:
    """Return why ``url`` may not be used for the link, or None when it may (§3.1)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return f"[cloud] url must be a ws:// or wss:// URL with a host, not {url!r}"
    if parts.username or parts.password or parts.query:
        return "[cloud] url must not carry credentials or a query; the api key goes in [auth]"
    if parts.scheme == "ws" and parts.hostname not in _LOOPBACK_HOSTS and not allow_insecure:
        return "[cloud] url must use wss:// (ws:// only to loopback or with allow_insecure = true)"
    return None


@dataclass(frozen=True, slots=True)
class ReconnectPlan:
    """What to do after an attempt ended: retry (after ``delay_s``) or stop in ``state``."""

    state: LinkState
    delay_s: float
    failures: int
    reason: str


def reconnect_plan(
    *,
    failures: int,
    close_code: int | None,
    http_status: int | None,
    retry_after_s: float | None,
    uptime_s: float | None,
    rng: Callable[[float, float], float],
) -> ReconnectPlan:
    """Decide the next step after a session or an attempt ended (§3.2, §3.7).

    Args:
        failures: Consecutive failures before this one (k of §3.7).
        close_code: The WebSocket close code, if a session was open.
        http_status: The upgrade's HTTP status, if the upgrade failed.
        retry_after_s: The upgrade's ``Retry-After``, if any.
        uptime_s: How long the session stayed up after SERVICE_ACK (None: never acked).
        rng: ``uniform(low, high)``.
    """
    if http_status in (401, 403) or close_code == CLOSE_UNAUTHORIZED:
        reason = (
            "login required: the hub refused the api key; set a valid one with"
            " `clawgate config set auth.api_key KEY` (or CLAWGATE_API_KEY) and restart"
        )
        return ReconnectPlan(LinkState.LOGIN_REQUIRED, 0, failures, reason)
    if http_status == 426 or close_code == CLOSE_UPGRADE_REQUIRED:
        reason = "the hub speaks no protocol version this daemon speaks; upgrade clawgate"
        return ReconnectPlan(LinkState.UPGRADE_REQUIRED, 0, failures, reason)
    k = 0 if uptime_s is not None and uptime_s >= STABLE_AFTER_S else failures
    if close_code == CLOSE_SERVICE_RESTART:
        # Reconnect at once; if that attempt fails, backoff goes on from where it was.
        return ReconnectPlan(LinkState.BACKOFF, 0.0, k, "the hub is restarting")
    if close_code == CLOSE_SESSION_REPLACED:
        # Another session took this daemonId: back off from the cap so two copies don't fight.
        return ReconnectPlan(
            LinkState.BACKOFF,
            rng(0, BACKOFF_CAP_S),
            max(k + 1, _CAP_EXPONENT),
            "another daemon with this id connected",
        )
    delay = rng(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**k))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    reason = "the link was lost"
    if close_code == CLOSE_PROTOCOL_VIOLATION:
        reason = "the hub reported a protocol violation"
    elif http_status is not None:
        reason = f"the hub answered HTTP {http_status}"
    return ReconnectPlan(LinkState.BACKOFF, delay, k + 1, reason)


@dataclass(slots=True)
class _Outcome:
    close_code: int | None = None
    http_status: int | None = None
    retry_after_s: float | None = None
    acked_at: float | None = None
    error: str | None = None


class _ProtocolViolation(Exception):
    """The hub broke the session sequence; the session is closed with 4400."""


class ControlLink:
    """Keep one session to the hub alive and move messages between it and the delegate."""

    def __init__(
        self,
        settings: LinkSettings,
        delegate: LinkDelegate,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._settings = settings
        self._delegate = delegate
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_message_bytes = max_message_bytes
        self.state = LinkState.DISABLED
        self.since = clock()
        self.last_error: str | None = None
        self.session_id: str | None = None
        self._outbox: asyncio.Queue[tuple[dict[str, Any], str | None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_types: set[str] = set()
        self._marks: set[asyncio.Task[None]] = set()
        self._commands: set[asyncio.Task[None]] = set()
        self._command_slots = asyncio.Semaphore(MAX_COMMANDS_IN_PROGRESS)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Start connecting, unless the URL is unusable (then stay ``disabled`` with the reason).

        Args:
            spawn: Starts the link's loop; the gateway passes its task group's.
        """
        problem = check_url(self._settings.url, self._settings.allow_insecure)
        if problem is not None:
            self.last_error = problem
            logger.error("control link disabled: %s", problem)
            return
        self._task = spawn(self._run(), name="control-link")

    async def stop(self) -> None:
        """Close the session and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # COMMANDs being recorded finish (their records must reach the disk), then marks.
        await asyncio.gather(*self._commands, return_exceptions=True)
        await asyncio.gather(*self._marks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """Return the link as ``status`` shows it."""
        out: dict[str, Any] = {
            "state": self.state.value,
            "connected": self.state is LinkState.CONNECTED,
            "since": format_time(self.since),
            "url": self._settings.url,
        }
        if self.session_id is not None and self.state is LinkState.CONNECTED:
            out["sessionId"] = self.session_id
        if self.last_error is not None:
            out["lastError"] = self.last_error
        return out

    # -- sending -----------------------------------------------------------------------

    def send(
        self, type_: MessageType, payload: dict[str, Any], *, reply_to: str | None = None
    ) -> bool:
        """Queue a message for the open session; return False when there is none."""
        outbox = self._outbox
        if outbox is None or self.state is not LinkState.CONNECTED:
            return False
        message = envelope(type_, payload, reply_to=reply_to, clock=self._clock)
        terminal_ack = None
        if type_ is MessageType.COMMAND_ACK and payload.get("state") in _TERMINAL:
            terminal_ack = str(payload["commandId"])
        outbox.put_nowait((message, terminal_ack))
        return True

    # -- the connection loop -----------------------------------------------------------

    def _set_state(self, state: LinkState, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state is self.state:
            return
        self.state = state
        self.since = self._clock()
        logger.info("control link %s", state.value)
        self._delegate.state_changed(state, self.since, self.session_id)

    async def _run(self) -> None:
        failures = 0
        headers = {
            "Authorization": f"Bearer {self._settings.api_key}",
            "User-Agent": f"clawgate/{__version__}",
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_connect=15)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while True:
                self._set_state(LinkState.CONNECTING)
                try:
                    outcome = await self._attempt(http)
                except Exception:
                    # A bug must cost a reconnect, not the link: state and retries go on.
                    logger.exception("control link session failed")
                    outcome = _Outcome(error="internal error in the link session; see the log")
                uptime = None if outcome.acked_at is None else self._clock() - outcome.acked_at
                plan = reconnect_plan(
                    failures=failures,
                    close_code=outcome.close_code,
                    http_status=outcome.http_status,
                    retry_after_s=outcome.retry_after_s,
                    uptime_s=uptime,
                    rng=self._rng.uniform,
                )
                failures = plan.failures
                stopped = plan.state in (LinkState.LOGIN_REQUIRED, LinkState.UPGRADE_REQUIRED)
                error = plan.reason if stopped else outcome.error or plan.reason
                if stopped:
                    logger.warning("control link stopped: %s", error)
                    self._set_state(plan.state, error)
                    return
                logger.info("control link down (%s); retrying in %.1f s", error, plan.delay_s)
                self._set_state(LinkState.BACKOFF, error)
                await asyncio.sleep(plan.delay_s)

    async def _attempt(self, http: aiohttp.ClientSession) -> _Outcome:
        outcome = _Outcome()
        try:
            ws = await http.ws_connect(
                self._settings.url,
                max_msg_size=self._max_message_bytes,
                autoping=True,
                heartbeat=None,
            )
        except aiohttp.WSServerHandshakeError as exc:
            outcome.http_status = exc.status
            outcome.retry_after_s = _retry_after(exc.headers)
            outcome.error = f"the hub answered HTTP {exc.status} to the upgrade"
            return outcome
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            outcome.error = f"cannot reach the hub: {type(exc).__name__}"
            return outcome
        try:
            await self._session(ws, outcome)
        except _ProtocolViolation as exc:
            outcome.error = str(exc)
            logger.warning("control link: %s", exc)
            await ws.close(code=CLOSE_PROTOCOL_VIOLATION, message=b"protocol violation")
        except TimeoutError:
            outcome.error = "no message from the hub within the heartbeat deadline"
            await ws.close(code=1001, message=b"dead link")
        except (aiohttp.ClientError, OSError, ConnectionResetError) as exc:
            outcome.error = f"connection error: {type(exc).__name__}"
        finally:
            self._outbox = None
            if not ws.closed:
                await ws.close()
        if outcome.close_code is None:
            outcome.close_code = ws.close_code
        return outcome

    async def _session(self, ws: aiohttp.ClientWebSocketResponse, outcome: _Outcome) -> None:
        register = envelope(
            MessageType.SERVICE_REGISTER, self._delegate.register_payload(), clock=self._clock
        )
        await ws.send_str(orjson.dumps(register).decode())
        ack = await self._service_ack(ws)
        self.session_id = ack.sessionId
        offset_ms = int((parse_time(ack.serverTime) - self._clock()) * 1000)
        if abs(offset_ms) > CLOCK_SKEW_WARN_MS:
            logger.warning("hub clock differs from ours by %.1f s", offset_ms / 1000)
        self._delegate.clock_offset(offset_ms)
        outcome.acked_at = self._clock()
        self._outbox = asyncio.Queue()
        self._set_state(LinkState.CONNECTED, None)
        self.last_error = None
        for ack_payload in self._delegate.unsent_acks():
            self.send(MessageType.COMMAND_ACK, ack_payload)
        report = self._delegate.last_report()
        if report is not None:
            self.send(MessageType.RECONCILIATION_REPORT, {**report, "trigger": "resend"})
        dead_after_s = dead_after_ms(ack.heartbeatIntervalMs) / 1000
        writer = asyncio.create_task(self._write(ws, self._outbox))
        try:
            while True:
                message = await ws.receive(timeout=dead_after_s)
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    await self._dispatch(message.data)
                elif message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    outcome.close_code = ws.close_code
                    return
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _service_ack(self, ws: aiohttp.ClientWebSocketResponse) -> ServiceAck:
        message = await ws.receive(timeout=REGISTER_ACK_TIMEOUT_S)
        if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise aiohttp.ClientConnectionError("closed before SERVICE_ACK")
        try:
            env = parse_envelope(orjson.loads(message.data))
            if env.type != MessageType.SERVICE_ACK.value:
                raise _ProtocolViolation(f"expected SERVICE_ACK first, got {env.type}")
            ack: ServiceAck = parse_payload(MessageType.SERVICE_ACK, env.payload)
        except (InvalidMessage, orjson.JSONDecodeError) as exc:
            raise _ProtocolViolation(f"unreadable SERVICE_ACK: {exc}") from None
        return ack

    async def _write(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        outbox: asyncio.Queue[tuple[dict[str, Any], str | None]],
    ) -> None:
        while True:
            message, terminal_ack = await outbox.get()
            await ws.send_str(orjson.dumps(message).decode())
            if terminal_ack is not None:
                # Not awaited here: marks of many acks share commits, and PONGs never wait
                # behind a backlog of fsyncs (§3.6).
                task = asyncio.create_task(self._delegate.ack_sent(terminal_ack))
                self._marks.add(task)
                task.add_done_callback(self._marks.discard)

    async def _dispatch(self, data: str | bytes) -> None:
        try:
            env = parse_envelope(orjson.loads(data))
        except (InvalidMessage, orjson.JSONDecodeError) as exc:
            logger.warning("ignored an unreadable message from the hub: %s", exc)
            return
        kind = env.type
        if kind == MessageType.PING.value:
            nonce = env.payload.get("nonce") if isinstance(env.payload, dict) else None
            self.send(MessageType.PONG, {"nonce": nonce}, reply_to=env.id)
        elif kind == MessageType.COMMAND.value:
            # Each COMMAND is answered by its own task, so the next one is read while this
            # one's record commits and their commits group. Tasks start in arrival order and
            # each reaches the queue before its first suspension, so a target's commands
            # still start in arrival order (§4.3). The semaphore bounds what is read ahead.
            await self._command_slots.acquire()
            task = asyncio.create_task(self._command(env.payload, env.id))
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)
        elif kind == MessageType.DESIRED_STATE.value:
            try:
                await self._delegate.desired_state(env.payload)
            except Exception:
                logger.exception("could not process a DESIRED_STATE; ignored")
        elif kind in (MessageType.PONG.value, MessageType.SERVICE_ACK.value):
            return
        elif kind not in self._warned_types:
            self._warned_types.add(kind)
            logger.info("ignored hub messages of unknown type %s", kind)

    async def _command(self, payload: Any, message_id: str) -> None:
        try:
            ack = await self._delegate.command(payload)
        except Exception:
            # A known type with a payload we cannot process is logged and ignored (§3.3).
            logger.exception("could not process a COMMAND; ignored")
            return
        finally:
            self._command_slots.release()
        if ack is not None:
            self.send(MessageType.COMMAND_ACK, ack, reply_to=message_id)


_TERMINAL: Final = frozenset({"done", "failed", "expired", "rejected"})


def _retry_after(headers: Any) -> float | None:
    value = None if headers is None else headers.get("Retry-After")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    return None
