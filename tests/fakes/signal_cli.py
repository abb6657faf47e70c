"""A local stand-in for `signal-cli -a +NUMBER daemon --http`: JSON-RPC and an SSE stream.

Served on loopback; `[channels.signal] http_url` points at `http://127.0.0.1:PORT`. The
three endpoints of signal-cli's HTTP daemon (man signal-cli-jsonrpc), with its shapes:

- `POST /api/v1/rpc`: one JSON-RPC 2.0 request (`Content-Type: application/json`, else
  415) -> `{"jsonrpc": "2.0", "result": ..., "id": ...}` or `{..., "error": {code, message,
  data}}`. Methods: `version` -> `{"version": "0.13.x"}`; `listGroups` -> `[{id, name,
  isMember, members, ...}]`; `send` (`recipient` list or `groupId`, `message`,
  `attachments` paths, `quoteTimestamp`, `quoteAuthor`) -> `{"timestamp", "results"}`;
  `sendTyping` (`recipient` or `groupId`) -> `{}`. signal-cli's error codes: -1 user error
  (an unregistered recipient: `data.response.results[].type` = `UNREGISTERED_FAILURE`; an
  unknown group), -32601 method not implemented, -32602 "Specified account does not exist"
  for an `account` param the daemon does not hold.
- `GET /api/v1/events` (`?account=`): `text/event-stream`; each received message is
  `id:<n>\\nevent:receive\\ndata:{"envelope": {...}, "account": "+..."}\\n\\n`, a `:` line is a
  keep-alive. An unknown `account` gets 400. A client reconnecting with `Last-Event-ID`
  first gets the events after that id (signal-cli keeps the last 1,000); events that came
  while nobody was reading are sent to the next reader (signal-cli's manual receive mode
  leaves them queued on the server the same way).
- `GET /api/v1/check`: 200.

A test plays the human with `user_says(...)` (or `push(envelope)` for any envelope), reads
what the bot sent with `wait_sent(...)`, and makes trouble with `drop()` (close the SSE
stream), `fail_for(n)` (the next `n` requests answer HTTP 503), and `unregister()` (the
account is no longer one the daemon holds).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["ACCOUNT", "ACCOUNT_UUID", "GROUP_ID", "FakeSignalCli", "Sent"]

ACCOUNT = "+15550001111"
ACCOUNT_UUID = "0b3c5a1e-1111-4a2b-9c3d-000000000001"
GROUP_ID = "Pmpi+EfPWmsxiomLe9Nx2XF9HOE483p6iKiFj65iMwI="
#: signal-cli keeps this many events for `Last-Event-ID` replays.
KEPT_EVENTS = 1000
USER_ERROR = -1
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


@dataclass
class Sent:
    """A message (or typing indicator) the bot sent through the daemon."""

    method: str
    recipient: str | None
    group_id: str | None
    message: str = ""
    timestamp: int = 0
    attachments: list[str] = field(default_factory=list)
    quote_timestamp: int | None = None
    quote_author: str | None = None

    @property
    def chat(self) -> str:
        """The recipient, or the group id."""
        return self.group_id or self.recipient or ""


@dataclass
class _Stream:
    response: web.StreamResponse
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class FakeSignalCli:
    """A running stand-in; `http_url` goes into config."""

    def __init__(self, *, keepalive_s: float = 0.5) -> None:
        self.account = ACCOUNT
        self.registered = True
        self.sent: list[Sent] = []
        self.calls: list[str] = []
        self.event_requests = 0
        self.known = {"+15550002222", "+15550003333", "+15550004444"}
        self.groups = {GROUP_ID: "Clawgate Test"}
        self._keepalive_s = keepalive_s
        # (id, SSE frame) of every event, the last KEPT_EVENTS kept; `_read` = the highest id
        # some stream has sent (what came after waits for the next reader).
        self._events: list[tuple[int, str]] = []
        self._read = 0
        self._ids = itertools.count(1)
        self._clock = itertools.count(int(time.time() * 1000))
        self._failures = 0
        self._method_failures: dict[str, int] = {}
        #: The `Last-Event-ID` header of each events request (None when absent).
        self.last_event_ids: list[str | None] = []
        self._streams: list[_Stream] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life -----------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """The daemon's root, as `signal-cli daemon --http HOST:PORT` serves it."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_post("/api/v1/rpc", self._rpc)
        app.router.add_get("/api/v1/events", self._events_stream)
        app.router.add_get("/api/v1/check", self._check)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every stream and stop listening."""
        await self.drop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- trouble --------------------------------------------------------------------

    async def drop(self) -> None:
        """Close every open event stream, as a restarted daemon or a network drop does."""
        for stream in list(self._streams):
            stream.closed.set()
        await self._notify()

    def fail_for(self, requests: int, method: str | None = None) -> None:
        """Answer the next `requests` requests (of one RPC `method`, else any) with HTTP 503."""
        if method is None:
            self._failures = requests
        else:
            self._method_failures[method] = requests

    def unregister(self) -> None:
        """Make the account one the daemon does not hold (unlinked, never registered)."""
        self.registered = False

    # -- the human side -------------------------------------------------------------

    def next_timestamp(self) -> int:
        """Return a fresh Signal timestamp (ms), unique in this stand-in."""
        return next(self._clock)

    async def user_says(
        self,
        text: str,
        *,
        number: str = "+15550002222",
        name: str = "Alice",
        group_id: str | None = None,
        mention_bot: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        quote: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Push a `receive` event of a human's message; return its envelope.

        With `mention_bot`, the text starts with the U+FFFC placeholder Signal puts where a
        mention is, and `mentions` names the bot's number and uuid.
        """
        timestamp = self.next_timestamp()
        data: dict[str, Any] = {
            "timestamp": timestamp,
            "message": text,
            "expiresInSeconds": 0,
            "viewOnce": False,
        }
        if mention_bot:
            data["message"] = "\ufffc " + text
            data["mentions"] = [
                {"name": self.account, "number": self.account, "uuid": ACCOUNT_UUID}
                | {"start": 0, "length": 1}
            ]
        if group_id is not None:
            data["groupInfo"] = {"groupId": group_id, "groupName": self.groups.get(group_id)}
            data["groupInfo"]["type"] = "DELIVER"
        if attachments:
            data["attachments"] = attachments
        if quote:
            data["quote"] = quote
        envelope = {
            "source": number,
            "sourceNumber": number,
            "sourceUuid": f"uuid-{number.lstrip('+')}",
            "sourceName": name,
            "sourceDevice": 1,
            "timestamp": timestamp,
            "serverReceivedTimestamp": timestamp + 5,
            "serverDeliveredTimestamp": timestamp + 9,
            "dataMessage": data,
        }
        await self.push(envelope)
        return envelope

    async def push(self, envelope: Any) -> int:
        """Queue a `receive` event holding `envelope` (any JSON); return its event id."""
        data = json.dumps({"envelope": envelope, "account": self.account}, separators=(",", ":"))
        return await self.push_raw(f"event:receive\ndata:{data}\n\n")

    async def push_raw(self, frame: str) -> int:
        """Queue one SSE frame as given (it gets an `id:` line); return its event id."""
        event_id = next(self._ids)
        self._events.append((event_id, f"id:{event_id}\n{frame}"))
        del self._events[:-KEPT_EVENTS]
        await self._notify()
        return event_id

    async def wait_streams(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` event streams were opened in all."""
        await self._wait(lambda: self.event_requests >= count, timeout)

    async def wait_sent(
        self, count: int = 1, *, chat: str | None = None, timeout: float = 10.0
    ) -> list[Sent]:
        """Wait until the bot sent `count` messages (to `chat`); return them."""

        def matching() -> list[Sent]:
            return [s for s in self.sent if s.method == "send" and chat in (None, s.chat)]

        await self._wait(lambda: len(matching()) >= count, timeout)
        return matching()

    async def wait_matching(
        self, match: Callable[[Sent], bool], *, count: int = 1, timeout: float = 10.0
    ) -> None:
        """Wait until `count` sent messages satisfy `match`."""
        await self._wait(
            lambda: sum(1 for s in self.sent if s.method == "send" and match(s)) >= count,
            timeout,
        )

    async def _wait(self, check: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- HTTP -----------------------------------------------------------------------

    def _failing(self) -> bool:
        if self._failures > 0:
            self._failures -= 1
            return True
        return False

    async def _check(self, request: web.Request) -> web.Response:
        return web.Response(status=503 if self._failing() else 200)

    async def _events_stream(self, request: web.Request) -> web.StreamResponse:
        self.event_requests += 1
        await self._notify()
        if self._failing():
            return web.Response(status=503)
        account = request.query.get("account")
        if not self.registered or (account and account != self.account):
            return web.Response(status=400)
        last = request.headers.get("Last-Event-ID")
        self.last_event_ids.append(last)
        kept = {event_id for event_id, _ in self._events}
        if last is not None and last.isdigit() and int(last) in kept:
            position = int(last)
        elif last is not None:
            position = 0  # an unknown id: every kept event
        else:
            position = self._read  # what nobody has read yet
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        stream = _Stream(response)
        self._streams.append(stream)
        loop = asyncio.get_running_loop()
        try:
            while not stream.closed.is_set():
                pending = [(i, d) for i, d in self._events if i > position]
                for event_id, frame in pending:
                    await response.write(frame.encode())
                    position = event_id
                    self._read = max(self._read, event_id)
                if pending:
                    continue
                deadline = loop.time() + self._keepalive_s
                async with self._changed:
                    try:
                        async with asyncio.timeout_at(deadline):
                            await self._changed.wait_for(
                                lambda after=position: (
                                    stream.closed.is_set()
                                    or any(i > after for i, _ in self._events)
                                )
                            )
                    except TimeoutError:
                        await response.write(b":\n")
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self._streams.remove(stream)
        # Closing the transport, not finishing the chunked body: the client sees a cut stream.
        if request.transport is not None:
            request.transport.close()
        return response

    async def _rpc(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=503, text="Service Unavailable")
        if not request.content_type.startswith("application/json"):
            return web.Response(status=415)
        try:
            body = await request.json()
        except ValueError:
            return _error(None, -32700, "Parse error")
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return _error(None, -32600, "method field must be set")
        request_id, method = body.get("id"), body["method"]
        params = body.get("params") or {}
        self.calls.append(method)
        if self._method_failures.get(method):
            self._method_failures[method] -= 1
            return web.Response(status=503, text="Service Unavailable")
        if method == "version":
            return _result(request_id, {"version": "0.13.22"})
        handler = _METHODS.get(method)
        if handler is None:
            return _error(request_id, METHOD_NOT_FOUND, "Method not implemented")
        account = params.get("account")
        if not self.registered or (account is not None and account != self.account):
            return _error(request_id, INVALID_PARAMS, "Specified account does not exist")
        response = handler(self, request_id, params)
        await self._notify()
        return response

    def _list_groups(self, request_id: Any, params: dict[str, Any]) -> web.Response:
        groups = [
            {
                "id": group_id,
                "name": name,
                "description": "",
                "isMember": True,
                "isBlocked": False,
                "members": [{"number": self.account, "uuid": ACCOUNT_UUID}],
                "pendingMembers": [],
                "requestingMembers": [],
                "admins": [],
                "groupInviteLink": None,
            }
            for group_id, name in self.groups.items()
        ]
        return _result(request_id, groups)

    def _target(self, params: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        """Return (recipient, group id, error message) of a send or sendTyping."""
        recipients = params.get("recipient")
        if isinstance(recipients, str):
            recipients = [recipients]
        group_id = params.get("groupId")
        if group_id is not None:
            if group_id not in self.groups:
                return None, None, f"Failed to send to group: Group not found: {group_id}"
            return None, str(group_id), None
        if not recipients:
            return None, None, "No recipients given"
        return str(recipients[0]), None, None

    def _send(self, request_id: Any, params: dict[str, Any]) -> web.Response:
        recipient, group_id, problem = self._target(params)
        if problem is not None:
            return _error(request_id, USER_ERROR, problem)
        attachments = params.get("attachments") or params.get("attachment") or []
        attachments = [attachments] if isinstance(attachments, str) else list(attachments)
        message = str(params.get("message") or "")
        if not message and not attachments:
            return _error(request_id, USER_ERROR, "No message given")
        for path in attachments:
            try:
                open(path, "rb").close()  # signal-cli reads each file before it sends
            except OSError:
                return _error(request_id, USER_ERROR, f"Failed to read attachment {path}")
        timestamp = self.next_timestamp()
        if recipient is not None and recipient not in self.known:
            result = {
                "recipientAddress": {"uuid": None, "number": recipient},
                "type": "UNREGISTERED_FAILURE",
            }
            data = {"response": {"timestamp": timestamp, "results": [result]}}
            return _error(
                request_id,
                USER_ERROR,
                f"Failed to send message to {recipient}: Unregistered user",
                data,
            )
        self.sent.append(
            Sent(
                "send",
                recipient,
                group_id,
                message,
                timestamp,
                [str(a) for a in attachments],
                params.get("quoteTimestamp"),
                params.get("quoteAuthor"),
            )
        )
        address = {"uuid": f"uuid-{(recipient or '').lstrip('+')}", "number": recipient}
        results = [{"recipientAddress": address, "type": "SUCCESS"}]
        return _result(request_id, {"timestamp": timestamp, "results": results})

    def _send_typing(self, request_id: Any, params: dict[str, Any]) -> web.Response:
        recipient, group_id, problem = self._target(params)
        if problem is not None:
            return _error(request_id, USER_ERROR, problem)
        self.sent.append(Sent("sendTyping", recipient, group_id))
        return _result(request_id, {})


_METHODS: dict[str, Any] = {
    "listGroups": FakeSignalCli._list_groups,
    "send": FakeSignalCli._send,
    "sendTyping": FakeSignalCli._send_typing,
}


def _result(request_id: Any, result: Any) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "result": result, "id": request_id})


def _error(request_id: Any, code: int, message: str, data: Any = None) -> web.Response:
    error = {"code": code, "message": message, "data": data}
    return web.json_response({"jsonrpc": "2.0", "error": error, "id": request_id})
