"""A simulated daemon speaking the control link to a hub over a real WebSocket.

It registers, answers PING, and (unless told not to) executes each COMMAND once by
``commandId`` and acks it ``accepted`` then ``done``; a re-sent COMMAND is answered with the
recorded terminal ack, as a real daemon must (spec §4.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from clawgate.protocol.control_link import MessageType, envelope
from clawgate.protocol.timefmt import format_time

__all__ = ["SimDaemon"]


class SimDaemon:
    """One simulated daemon; ``connect`` returns after SERVICE_ACK (or a refusal)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        daemon_id: str | None = None,
        protocol_version: int = 1,
        min_protocol_version: int | None = None,
        auto_ack: bool = True,
        answer_pings: bool = True,
        result: Callable[[dict[str, Any]], Any] = lambda cmd: {"echo": cmd["params"]},
        receive_buffer: int | None = None,
    ) -> None:
        self.url = url
        self.key = key
        self.daemon_id = daemon_id or str(uuid.uuid4())
        self.protocol_version = protocol_version
        self.min_protocol_version = min_protocol_version
        self.auto_ack = auto_ack
        self.answer_pings = answer_pings
        self.result = result
        # A fixed, small kernel receive buffer (no autotuning): a daemon that stops reading
        # then stalls the hub's writes after kilobytes, not tens of megabytes.
        self.receive_buffer = receive_buffer
        self.executed: dict[str, int] = {}
        self.terminal_acks: dict[str, dict[str, Any]] = {}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self.ack: dict[str, Any] | None = None
        self.close_code: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    def register_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "daemonId": self.daemon_id,
            "daemonVersion": "0.1.0-sim",
            "protocolVersion": self.protocol_version,
            "hostname": "sim-host",
            "platform": "linux",
            "arch": "x86_64",
            "plugins": [],
            "lastAppliedRevision": 0,
            "queueDepth": 0,
        }
        if self.min_protocol_version is not None:
            payload["minProtocolVersion"] = self.min_protocol_version
        return payload

    async def open_socket(self) -> aiohttp.ClientWebSocketResponse:
        """Open the WebSocket only (raises ``WSServerHandshakeError`` on HTTP refusal)."""
        self._session = aiohttp.ClientSession(connector=self._connector())
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            self._ws = await self._session.ws_connect(self.url, headers=headers, autoping=True)
        except BaseException:
            await self._session.close()
            raise
        return self._ws

    def _connector(self) -> aiohttp.TCPConnector:
        size = self.receive_buffer

        def open_socket(addr_info: Any) -> socket.socket:
            family, kind, proto, _, _ = addr_info
            sock = socket.socket(family, kind, proto)
            if size is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            return sock

        return aiohttp.TCPConnector(socket_factory=open_socket)

    async def stop_reading(self) -> None:
        """Stop reading the socket, as a daemon stuck on something else would."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def connect(self, *, register: bool = True) -> dict[str, Any] | None:
        """Open, register, and start answering; return SERVICE_ACK or None if closed."""
        ws = await self.open_socket()
        if not register:
            return None
        await self.send(MessageType.SERVICE_REGISTER, self.register_payload())
        msg = await ws.receive(timeout=5)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            self.close_code = ws.close_code
            await self.close()
            return None
        self.ack = orjson.loads(msg.data)
        self._reader = asyncio.create_task(self._read())
        return self.ack

    async def send(self, kind: MessageType | str, payload: Any, **extra: Any) -> None:
        assert self._ws is not None
        if isinstance(kind, MessageType):
            message = envelope(kind, payload)
        else:
            message = {
                "type": kind,
                "id": str(uuid.uuid4()),
                "ts": format_time(0),
                "payload": payload,
            }
        message.update(extra)
        await self._ws.send_str(orjson.dumps(message).decode())

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None
        await self._ws.send_str(text)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            message = orjson.loads(msg.data)
            self.seen.append(message)
            kind = message["type"]
            if kind == "PING" and self.answer_pings:
                pong = {"nonce": message["payload"]["nonce"]}
                await self.send(MessageType.PONG, pong, replyTo=message["id"])
            elif kind == "COMMAND" and self.auto_ack:
                await self._execute(message["payload"], message["id"])
            await self.inbox.put(message)
        self.close_code = self._ws.close_code
        await self.inbox.put({"type": "_CLOSED", "code": self.close_code})

    async def ack_command(self, command_id: str, state: str, **fields: Any) -> None:
        payload = {"commandId": command_id, "state": state, "attempt": 1, "at": format_time(0)}
        payload.update(fields)
        await self.send(MessageType.COMMAND_ACK, payload)

    async def _execute(self, command: dict[str, Any], reply_to: str) -> None:
        command_id = command["commandId"]
        if command_id in self.terminal_acks:
            await self.send(
                MessageType.COMMAND_ACK, self.terminal_acks[command_id], replyTo=reply_to
            )
            return
        self.executed[command_id] = self.executed.get(command_id, 0) + 1
        await self.ack_command(command_id, "accepted")
        done = {
            "commandId": command_id,
            "state": "done",
            "attempt": 1,
            "at": format_time(0),
            "result": self.result(command),
        }
        self.terminal_acks[command_id] = done
        await self.send(MessageType.COMMAND_ACK, done, replyTo=reply_to)

    async def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """Return the next inbound message of ``kind``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.inbox.get()
                if message["type"] == kind:
                    return message
                if message["type"] == "_CLOSED":
                    raise AssertionError(f"closed ({message['code']}) while waiting for {kind}")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait until the hub closes the link; return the close code."""
        if self._reader is None:
            assert self._ws is not None
            async with asyncio.timeout(timeout):
                async for _ in self._ws:
                    pass
            self.close_code = self._ws.close_code
            return self.close_code
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        return self.close_code

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        if self._session is not None:
            await self._session.close()
