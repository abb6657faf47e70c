"""One daemon's control link on the hub side: ``GET /v1/daemon`` (control-plane spec §3, §7.1).

Two phases: exactly one SERVICE_REGISTER within 10 s, then the steady state. After SERVICE_ACK
the hub always sends DESIRED_STATE and re-sends every unsettled COMMAND. One writer task drains
a bounded queue (a deque and a wake-up future, as ``gateway.connection`` does: an
``asyncio.Queue`` costs three deques and an event, KiBs per held daemon); the instance's
ticker calls ``tick`` to send PING and to declare the link dead after 2.5 heartbeats of
silence; the instance's sweep (``HubCore.sweep_once``) calls ``repair`` to send whatever a lost
wake-up left behind, and to let go (4409) of a daemon another session took while this one
missed the takeover notice. The reader does not wait for each COMMAND_ACK's
commit before reading the next: acks are recorded by tasks started in arrival order, and the
store commits writes in call order, so the acks of one command are applied in the order the
daemon sent them while many share one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections import deque
from typing import Any, Final

import orjson
from aiohttp import WSMsgType, web

from .. import __version__
from ..protocol.control_link import (
    CLOSE_GOING_AWAY,
    CLOSE_PROTOCOL_VIOLATION,
    CLOSE_SERVICE_RESTART,
    CLOSE_SESSION_REPLACED,
    CLOSE_UNAUTHORIZED,
    CLOSE_UPGRADE_REQUIRED,
    MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION,
    REGISTER_TIMEOUT_MS,
    CommandAck,
    CommandState,
    Envelope,
    ErrorInfo,
    InvalidMessage,
    MessageType,
    ReconciliationReport,
    ServiceRegister,
    dead_after_ms,
    envelope,
    negotiate_version,
    parse_envelope,
    parse_payload,
)
from .bus import Subscription, command_channel, daemon_channel
from .core import HubCore, command_scope
from .store import CommandRecord, KeyRecord, SessionInfo, SweepRow

__all__ = ["DaemonLink", "LinkPhase"]

logger = logging.getLogger(__name__)

#: Frames queued for one daemon before it counts as too slow and is closed. The hub's own
#: bursts (the unsettled commands re-sent at connect) wait while a quarter of it is used, so
#: only frames the daemon leaves unread count.
SEND_QUEUE_MAX: Final = 4096
CLOSE_SLOW_CONSUMER: Final = 1008
CLOSE_INTERNAL_ERROR: Final = 1011
#: COMMAND_ACKs of one link being committed at once; past this the reader waits.
ACKS_IN_FLIGHT_MAX: Final = 256
#: How long a closing link lets its pending acks finish committing.
ACK_DRAIN_S: Final = 5.0
_REASON_MAX: Final = 120
_FROM_DAEMON: Final = frozenset(
    {
        MessageType.COMMAND_ACK,
        MessageType.RECONCILIATION_REPORT,
        MessageType.PING,
        MessageType.PONG,
    }
)


class LinkPhase(enum.Enum):
    """Where a link is in its life."""

    REGISTERING = "registering"
    ACTIVE = "active"
    CLOSED = "closed"


class _Close(Exception):
    """End the link with a close code and a reason for the daemon."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class DaemonLink:
    """One authenticated WebSocket from a daemon, from upgrade to close."""

    # Slots: each held daemon saves the cost of an instance dict.
    __slots__ = (
        "_acks",
        "_close",
        "_last_inbound",
        "_outbox",
        "_room",
        "_sent_commands",
        "_sent_revision",
        "_subscription",
        "_tasks",
        "_unknown_types",
        "_wakeup",
        "core",
        "daemon_id",
        "key_id",
        "log",
        "phase",
        "seen",
        "session_id",
        "ws",
    )

    def __init__(self, core: HubCore, ws: web.WebSocketResponse, key: KeyRecord) -> None:
        """Wrap a prepared socket opened with ``key``."""
        self.core = core
        self.ws = ws
        self.key_id = key.key_id
        self.phase = LinkPhase.REGISTERING
        self.daemon_id: str | None = None
        self.session_id = str(uuid.uuid4())
        #: Frames for the writer, at most ``SEND_QUEUE_MAX``; ``None`` ends it.
        self._outbox: deque[str | None] = deque()
        #: Set while the writer waits for a frame.
        self._wakeup: asyncio.Future[None] | None = None
        #: Set while a paced burst waits for the writer to catch up.
        self._room: asyncio.Future[None] | None = None
        self._close: tuple[int, str] | None = None
        self._last_inbound = time.monotonic()
        self._sent_commands: set[str] = set()
        self._sent_revision = -1
        #: A PONG arrived since the last sweep (``lastSeenAt`` is due).
        self.seen = False
        #: Made on the first unknown type (most links never see one).
        self._unknown_types: set[str] | None = None
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._acks: set[asyncio.Task[None]] = set()
        self.log: logging.LoggerAdapter[logging.Logger] = logging.LoggerAdapter(
            logger, {"conn": f"session={self.session_id[:8]}"}
        )

    # -- called from outside -----------------------------------------------------

    def close_soon(self, code: int, reason: str) -> None:
        """Ask the link to close with ``code`` once queued frames are written."""
        if self._close is None:
            self._close = (code, reason)
            if len(self._outbox) < SEND_QUEUE_MAX:
                self._push(None)
            if len(self._outbox) >= SEND_QUEUE_MAX:
                # The writer is stuck on a full queue; close without waiting for it.
                self._spawn(self.ws.close(code=code, message=reason.encode()[:_REASON_MAX]))

    def revoked(self) -> None:
        """Close because the key this link used was revoked."""
        self.close_soon(CLOSE_UNAUTHORIZED, "api key revoked; the daemon needs a new key")

    def restarting(self) -> None:
        """Close because the hub is stopping."""
        self.close_soon(CLOSE_SERVICE_RESTART, "hub restarting")

    # -- the life of the link -------------------------------------------------------

    async def run(self) -> None:
        """Serve the link until it closes; never raises for the daemon's mistakes."""
        writer = asyncio.create_task(self._writer(), name="hub-link-writer")
        try:
            await self._serve()
        except _Close as close:
            self.close_soon(close.code, close.reason)
        finally:
            self.phase = LinkPhase.CLOSED
            if self._subscription is not None:
                self._subscription.close()
            for task in list(self._tasks):
                task.cancel()
            if self._acks:
                # Their writes are handed over already; let them commit and wake waiters.
                await asyncio.wait(self._acks, timeout=ACK_DRAIN_S)
            if self._close is None:
                self.close_soon(CLOSE_GOING_AWAY, "link closed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            if not writer.done():
                writer.cancel()
            await self.ws.close()
            await self._end_session()

    async def _serve(self) -> None:
        # Not kept in this frame: the registration is parsed, used and let go.
        await self._activate(*await self._await_register())
        async for msg in self.ws:
            self._last_inbound = time.monotonic()
            if msg.type is not WSMsgType.TEXT:
                raise _Close(CLOSE_PROTOCOL_VIOLATION, "messages must be JSON text frames")
            await self._handle(self._decode(msg.data))
            if self._close is not None:
                return

    async def _await_register(self) -> tuple[ServiceRegister, str]:
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT_MS / 1000):
                msg = await self.ws.receive()
        except TimeoutError:
            raise _Close(
                CLOSE_PROTOCOL_VIOLATION, "send SERVICE_REGISTER first, within 10 s"
            ) from None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise _Close(CLOSE_GOING_AWAY, "closed before SERVICE_REGISTER")
        if msg.type is not WSMsgType.TEXT:
            raise _Close(CLOSE_PROTOCOL_VIOLATION, "messages must be JSON text frames")
        first = self._decode(msg.data)
        if first.type != MessageType.SERVICE_REGISTER:
            raise _Close(CLOSE_PROTOCOL_VIOLATION, "the first message must be SERVICE_REGISTER")
        try:
            register = parse_payload(MessageType.SERVICE_REGISTER, first.payload)
        except InvalidMessage as exc:
            raise _Close(CLOSE_PROTOCOL_VIOLATION, f"invalid SERVICE_REGISTER: {exc}") from None
        assert isinstance(register, ServiceRegister)
        return register, first.id

    async def _activate(self, register: ServiceRegister, reply_to: str) -> None:
        version = negotiate_version(register.protocolVersion, register.minProtocolVersion)
        if version is None:
            raise _Close(
                CLOSE_UPGRADE_REQUIRED,
                f"no common protocol version: this hub speaks "
                f"{MIN_PROTOCOL_VERSION}..{MAX_PROTOCOL_VERSION}",
            )
        core = self.core
        daemon_id = register.daemonId
        self.daemon_id = daemon_id
        self.log = logging.LoggerAdapter(
            logger, {"conn": f"daemon={daemon_id[:8]} session={self.session_id[:8]}"}
        )
        info = SessionInfo(
            daemon_id=daemon_id,
            session_id=self.session_id,
            instance_id=core.instance_id,
            key_id=self.key_id,
            hostname=register.hostname,
            platform=register.platform,
            daemon_version=register.daemonVersion,
            arch=register.arch,
            plugins=[p.model_dump(mode="json", exclude_none=True) for p in register.plugins],
            last_applied_revision=register.lastAppliedRevision,
            queue_depth=register.queueDepth,
        )
        await core.store.open_session(info, core.now())
        channel = daemon_channel(daemon_id)
        # Publish the takeover before subscribing, so this link never sees its own notice.
        await core.publish(
            channel, {"kind": "takeover", "daemonId": daemon_id, "id": self.session_id}
        )
        self._subscription = await core.subscribe(channel, self._on_wakeup)
        core.held[daemon_id] = self
        self.phase = LinkPhase.ACTIVE
        settings = core.settings
        ack = {
            "sessionId": self.session_id,
            "protocolVersion": version,
            "heartbeatIntervalMs": settings.heartbeat_interval_ms,
            "serverTime": core.now(),
            "hubVersion": __version__,
            "maxMessageBytes": settings.max_message_bytes,
        }
        self._send(MessageType.SERVICE_ACK, ack, reply_to=reply_to)
        self.log.info(
            "daemon registered (%s, protocol %d, last applied revision %d)",
            register.hostname,
            version,
            register.lastAppliedRevision,
        )
        await self._send_desired()
        # In a task: the reader must take the daemon's acks while the commands go out.
        self._spawn(self._resend_unsettled())

    async def _end_session(self) -> None:
        self.core.remove_link(self)
        if self.daemon_id is None:
            return
        if self.core.held.get(self.daemon_id) is self:
            del self.core.held[self.daemon_id]
        with contextlib.suppress(Exception):
            await self.core.store.close_session(self.daemon_id, self.session_id, self.core.now())
        code = self._close[0] if self._close else None
        self.log.info("link closed (code %s)", code)

    # -- inbound ----------------------------------------------------------------------

    def _decode(self, data: str) -> Envelope:
        try:
            return parse_envelope(orjson.loads(data))
        except orjson.JSONDecodeError:
            raise _Close(CLOSE_PROTOCOL_VIOLATION, "a message is not valid JSON") from None
        except InvalidMessage as exc:
            raise _Close(CLOSE_PROTOCOL_VIOLATION, f"not an envelope: {exc}") from None

    async def _handle(self, message: Envelope) -> None:
        kind = message.known_type
        if kind is None:
            if self._unknown_types is None:
                self._unknown_types = set()
            if message.type not in self._unknown_types:
                self._unknown_types.add(message.type)
                self.log.warning("ignoring unknown message type %r", message.type[:64])
            return
        if kind not in _FROM_DAEMON:
            raise _Close(CLOSE_PROTOCOL_VIOLATION, f"a daemon must not send {kind.value} now")
        try:
            payload = parse_payload(kind, message.payload)
        except InvalidMessage as exc:
            # A known type with an invalid payload is logged and ignored (spec §3.3).
            self.log.warning("ignoring invalid %s: %s", kind.value, exc)
            return
        core = self.core
        assert self.daemon_id is not None
        if kind is MessageType.PING:
            self._send(MessageType.PONG, {"nonce": payload.nonce}, reply_to=message.id)
        elif kind is MessageType.PONG:
            # Written by the next sweep, with every other link's: one statement, not one per
            # PONG (10,000 daemons would make 500 writes/s of it).
            self.seen = True
        elif kind is MessageType.COMMAND_ACK:
            await self._ack_soon(payload)
        elif isinstance(payload, ReconciliationReport):
            await core.store.add_report(self.daemon_id, payload.model_dump(mode="json"), core.now())

    async def _ack_soon(self, ack: CommandAck) -> None:
        """Start recording ``ack``; wait only while too many acks are being committed."""
        if len(self._acks) >= ACKS_IN_FLIGHT_MAX:
            await asyncio.wait(self._acks, return_when=asyncio.FIRST_COMPLETED)
        # Tasks start in creation order, so acks reach the store in the order they arrived.
        task = asyncio.create_task(self._record_ack(ack))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _record_ack(self, ack: CommandAck) -> None:
        try:
            await self._on_ack(ack)
        except Exception:
            # Repaired on reconnect: the COMMAND is unsettled, so it is re-sent and the
            # daemon answers it with its recorded ack (spec §3.4, §4.1).
            self.log.exception("recording an ack failed; closing the link")
            self.close_soon(CLOSE_INTERNAL_ERROR, "the hub could not record an ack; reconnect")

    async def _on_ack(self, ack: CommandAck) -> None:
        core = self.core
        assert self.daemon_id is not None
        body = ack.model_dump(mode="json", exclude_none=True)
        if ack.state.value == "done" and "result" not in body:
            body["result"] = None
        outcome = await core.store.record_ack(self.daemon_id, body, core.now())
        if outcome is None:
            self.log.warning("ack for a command this daemon does not have; ignored")
            return
        if not outcome.changed:
            if outcome.record.state != ack.state.value and ack.terminal:
                self.log.warning(
                    "command %s already ended %s; a later %s ack was ignored",
                    ack.commandId,
                    outcome.record.state,
                    ack.state.value,
                )
            return
        if ack.terminal:
            core.vault.drop(command_scope(ack.commandId))
        await core.publish(
            command_channel(ack.commandId),
            {"kind": "ack", "commandId": ack.commandId, "state": ack.state.value},
        )

    # -- outbound ---------------------------------------------------------------------

    def _send(
        self, kind: MessageType, payload: dict[str, Any], *, reply_to: str | None = None
    ) -> None:
        if self._close is not None:
            return
        text = orjson.dumps(envelope(kind, payload, reply_to=reply_to, clock=self.core.clock))
        if len(self._outbox) >= SEND_QUEUE_MAX:
            self.log.warning("daemon reads too slowly; closing the link")
            self.close_soon(CLOSE_SLOW_CONSUMER, "too many unread messages")
            return
        self._push(text.decode())

    def _push(self, frame: str | None) -> None:
        self._outbox.append(frame)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _writer(self) -> None:
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        while True:
            if not outbox:
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            text = outbox.popleft()
            if text is None:
                break
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                break
            # Drop the reference now: an idle writer must not pin its last frame.
            del text
            room = self._room
            if room is not None and self._has_room():
                self._room = None
                if not room.done():
                    room.set_result(None)
        if self._close is not None and not self.ws.closed:
            code, reason = self._close
            await self.ws.close(code=code, message=reason.encode()[:_REASON_MAX])

    async def _send_desired(self) -> None:
        assert self.daemon_id is not None
        payload = await self.core.desired_message(self.daemon_id)
        if payload["revision"] < self._sent_revision:
            return
        self._sent_revision = payload["revision"]
        self._send(MessageType.DESIRED_STATE, payload)

    async def _send_command(self, command_id: str) -> None:
        record = await self.core.store.get_command(command_id)
        if record is None or record.terminal or record.command.daemon_id != self.daemon_id:
            return
        self._sent_commands.add(command_id)
        await self._send_or_fail(record)

    async def _resend_unsettled(self) -> None:
        """Send every command the daemon has not settled, paced to how fast it reads."""
        assert self.daemon_id is not None
        records = await self.core.store.unsettled_commands(self.daemon_id, self.core.now())
        # All count as sent now, so the sweep does not send them again meanwhile.
        self._sent_commands.update(record.command_id for record in records)
        for record in records:
            await self._until_room()
            if self._close is not None:
                return
            await self._send_or_fail(record)

    async def _until_room(self) -> None:
        """Wait while a quarter of the outbox is used (see ``SEND_QUEUE_MAX``)."""
        while self._close is None and not self._has_room():
            self._room = asyncio.get_running_loop().create_future()
            await self._room

    def _has_room(self) -> bool:
        """Whether a paced burst may queue another frame (under a quarter of the bound)."""
        return len(self._outbox) < SEND_QUEUE_MAX // 4

    async def _send_or_fail(self, record: CommandRecord) -> None:
        """Send a COMMAND; one that cannot be encoded ends failed, never stuck pending."""
        try:
            self._send(MessageType.COMMAND, self.core.command_message(record))
        except (TypeError, orjson.JSONEncodeError) as exc:
            self.log.warning(
                "command %s cannot be encoded (%s); failing it", record.command_id, exc
            )
            failed = CommandAck(
                commandId=record.command_id,
                state=CommandState.FAILED,
                attempt=0,
                at=self.core.now(),
                error=ErrorInfo(code="UNSENDABLE", message="the hub could not encode the command"),
            )
            await self._on_ack(failed)

    def _on_wakeup(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "takeover" and message.get("id") != self.session_id:
            self._taken_over()
        elif kind == "command" and isinstance(message.get("id"), str):
            self._spawn(self._send_command(message["id"]))
        elif kind == "desired_state":
            self._spawn(self._send_desired())

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def tick(self, now: float) -> None:
        """Send PING, or end the link after 2.5 heartbeats of silence (``now``: monotonic).

        Called for every link by the instance's one ticker (``HubCore.run_ticks``): a task
        per link would cost each held daemon a few KiB more.
        """
        if self.phase is not LinkPhase.ACTIVE or self._close is not None:
            return
        dead_s = dead_after_ms(self.core.settings.heartbeat_interval_ms) / 1000
        silent = now - self._last_inbound
        if silent >= dead_s:
            self.log.warning("no message for %.1f s; the link is dead", silent)
            self.close_soon(CLOSE_GOING_AWAY, "link dead: no message within 2.5 heartbeats")
            # The reader may sit in a half-open TCP connection forever; end it too.
            self._spawn(self.ws.close(code=CLOSE_GOING_AWAY, message=b"link dead"))
            return
        self._send(MessageType.PING, {"nonce": uuid.uuid4().hex})

    def _taken_over(self) -> None:
        if self._close is not None:
            return
        self.log.warning("another session took this daemon; closing this one")
        self.core.metrics.takeovers.inc()
        self.close_soon(CLOSE_SESSION_REPLACED, "another session took this daemonId")

    def repair(self, row: SweepRow) -> None:
        """Close if another session owns the daemon; send what the link has not sent yet."""
        if self.phase is not LinkPhase.ACTIVE or self._close is not None:
            return
        repairs = self.core.metrics.sweep_repairs
        if row.session_id != self.session_id:
            repairs.labels("takeover").inc()
            self._taken_over()
            return
        # Commands that ended leave the sent set, which so holds only the unsettled ones.
        self._sent_commands.intersection_update(row.unsettled)
        if row.desired_revision > self._sent_revision:
            repairs.labels("desired_state").inc()
            self._spawn(self._send_desired())
        for command_id in row.unsettled:
            if command_id not in self._sent_commands:
                repairs.labels("command").inc()
                self._spawn(self._send_command(command_id))
