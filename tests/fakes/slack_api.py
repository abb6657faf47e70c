"""A local stand-in for Slack: the Web API over HTTP and Socket Mode over a WebSocket.

Served on loopback; `[channels.slack] api_base` points at `http://127.0.0.1:PORT/api/` and
slack-sdk calls `POST /api/<method>` exactly as on slack.com (form or JSON bodies, the
token as `Authorization: Bearer`). Implemented, with Slack's documented shapes:

- `auth.test` (bot token) -> `{ok, url, team, user, team_id, user_id, bot_id}`;
- `apps.connections.open` (app-level `xapp-` token only, else `not_allowed_token_type`) ->
  `{ok, url}` where the URL is a one-use `ws://127.0.0.1:PORT/link/?ticket=...`;
- `chat.postMessage` (`channel`, `text`, `thread_ts`) -> `{ok, channel, ts, message}`;
  `no_text`, `channel_not_found`, `msg_too_long` (over 40,000 characters);
- `chat.update` (`channel`, `ts`, `text`) -> `{ok, channel, ts, text}`; `message_not_found`;
- `reactions.add` (`channel`, `timestamp`, `name`) -> `{ok}`; `already_reacted`;
- the upload flow of `files.uploadV2`: `files.getUploadURLExternal` (`filename`, `length`)
  -> `{ok, upload_url, file_id}`, a POST of the bytes to that URL (200 `OK - <length>`),
  then `files.completeUploadExternal` (`files` JSON, `channel_id`, `thread_ts`,
  `initial_comment`) -> `{ok, files: [{id, title}]}`; a file not uploaded is `file_not_found`.

Errors are HTTP 200 with `{"ok": false, "error": "<code>"}` (`invalid_auth`,
`not_authed`, ...), except rate limits: HTTP 429, a `Retry-After` header in seconds, and
`{"ok": false, "error": "ratelimited"}`.

Socket Mode: a connection gets `hello` first; each event the human causes is sent as an
`events_api` envelope (`envelope_id`, `payload` = the Events API `event_callback`,
`retry_attempt`) and must be acked with `{"envelope_id": ...}`; an envelope not acked is
sent again (`retry_attempt` + 1) on the next connection, as Slack redelivers. `refresh()`
sends `{"type": "disconnect", "reason": "refresh_requested"}` and closes the socket a
moment later, as Slack does before it rotates a connection; `drop()` closes it without
warning; `redeliver(envelope)` sends an envelope again.

Events API (`request_url` set, as the app's Event Subscriptions Request URL): each event is
POSTed to that URL as Slack does, the `event_callback` JSON signed with `SIGNING_SECRET`
(`X-Slack-Request-Timestamp`, `X-Slack-Signature: v0=<HMAC-SHA256 of v0:<ts>:<body>>`); the
envelope counts as acked when the answer is a 2xx. `redeliver` sends it again with
`X-Slack-Retry-Num` / `X-Slack-Retry-Reason`, `verify_url(challenge)` sends the
`url_verification` Slack sends when the URL is entered, and `post_signed(body, ...)` sends any
body with a right or wrong secret, or a stale timestamp.

A test plays the human with `user_says(...)` and reads what the bot posted with
`wait_sent(...)`. `script(method, *behaviours)` makes the next calls of a Web API method
misbehave: `"429"` (Retry-After 1), `"500"`, `"invalid_auth"`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import WSMsgType, web

__all__ = [
    "APP_ID",
    "APP_TOKEN",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "SIGNING_SECRET",
    "TEAM_ID",
    "Envelope",
    "FakeSlack",
    "Posted",
]

TEAM_ID = "T0CLAWGATE"
APP_ID = "A0CLAWGATE"
BOT_USER_ID = "U0CLAWBOT"
BOT_ID = "B0CLAWBOT"
BOT_TOKEN = "xoxb-1111111111-2222222222-FakeBotTokenForTests"
APP_TOKEN = "xapp-1-A0CLAWGATE-3333333333-fakeapptokenfortestsonly"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
#: `chat.postMessage` refuses longer text (Slack truncates at 40,000; 4,000 is advised).
MAX_TEXT = 40_000


@dataclass
class Posted:
    """A message the bot posted or edited, or a reaction it added."""

    method: str
    channel: str
    ts: str
    text: str = ""
    thread_ts: str | None = None
    reaction: str | None = None
    file_name: str | None = None
    file_bytes: int = 0


@dataclass
class Envelope:
    """One Socket Mode envelope and whether the client acked it."""

    envelope_id: str
    payload: dict[str, Any]
    retry_attempt: int = 0
    acked: bool = False
    # Events API: the HTTP status of each POST of this envelope, in order.
    statuses: list[int] = field(default_factory=list)


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    ticket: str
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class FakeSlack:
    """A running stand-in; `api_base` goes into config."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.calls: list[str] = []
        self.envelopes: list[Envelope] = []
        self.connections = 0
        self.bot_tokens = {BOT_TOKEN}
        self.app_tokens = {APP_TOKEN}
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._tickets: set[str] = set()
        # file id -> (file name, declared length, uploaded bytes or None)
        self._uploads: dict[str, tuple[str, int, bytes | None]] = {}
        self._sockets: list[_Socket] = []
        self._ts = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: Events API mode: the Request URL events are POSTed to (None: Socket Mode).
        self.request_url: str | None = None

    # -- life -----------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        """The Web API root, as slack-sdk's `base_url` (`<method>` is appended)."""
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/link/", self._link)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every socket and stop listening."""
        for sock in list(self._sockets):
            await sock.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, method: str, *behaviours: str) -> None:
        """Make the next calls of `method` misbehave, one behaviour per call."""
        self._scripts[method].extend(behaviours)

    # -- the human side -------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    async def user_says(
        self,
        text: str,
        *,
        user: str = "U0ALICE",
        channel: str = "D0ALICE",
        thread_ts: str | None = None,
        event_type: str = "message",
    ) -> str:
        """Send the event of a human's message (a DM when `channel` starts with D); return ts."""
        ts = self._next_ts()
        channel_type = "im" if channel.startswith("D") else "channel"
        event: dict[str, Any] = {
            "type": event_type,
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM_ID,
        }
        if event_type == "message":
            event["channel_type"] = channel_type
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        await self.send_event(event)
        return ts

    async def send_event(self, event: dict[str, Any]) -> Envelope:
        """Wrap `event` in an `event_callback` and an `events_api` envelope, and send it."""
        payload = {
            "token": "verification-token-unused-in-socket-mode",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._event_ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
        envelope = Envelope(secrets.token_hex(8), payload)
        self.envelopes.append(envelope)
        if self.request_url is not None:
            await self._post_envelope(envelope)
        elif self._sockets:
            await self._send_envelope(self._sockets[-1], envelope)
        return envelope

    # -- Events API -----------------------------------------------------------------

    async def post_signed(
        self,
        body: bytes,
        *,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST `body` to the Request URL signed with `secret` at `timestamp` (default now).

        Returns:
            The HTTP status and the answer's text.
        """
        assert self.request_url is not None, "set request_url first"
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + stamp.encode() + b":" + body
        digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        sent = {
            "Content-Type": "application/json",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={digest}",
            **(headers or {}),
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.request_url, data=body, headers=sent) as response,
        ):
            return response.status, await response.text()

    async def verify_url(self, challenge: str) -> tuple[int, str]:
        """Send the `url_verification` Slack sends when the Request URL is entered."""
        body = {"token": "unused", "challenge": challenge, "type": "url_verification"}
        return await self.post_signed(json.dumps(body).encode())

    async def _post_envelope(self, envelope: Envelope) -> None:
        headers = {}
        if envelope.retry_attempt:
            headers = {
                "X-Slack-Retry-Num": str(envelope.retry_attempt),
                "X-Slack-Retry-Reason": "http_timeout",
            }
        body = json.dumps(envelope.payload).encode()
        status, _ = await self.post_signed(body, headers=headers)
        envelope.statuses.append(status)
        envelope.acked = envelope.acked or 200 <= status < 300
        await self._notify()

    async def refresh(self, close_after_s: float = 0.2) -> None:
        """Tell the live connection Slack wants it replaced, then close it."""
        sock = self._sockets[-1]
        await sock.ws.send_json(
            {
                "type": "disconnect",
                "reason": "refresh_requested",
                "debug_info": {"host": "applink-fake"},
            }
        )
        await asyncio.sleep(close_after_s)
        await sock.ws.close()

    async def redeliver(self, envelope: Envelope) -> None:
        """Send an envelope again, as Slack does when it thinks the ack was lost."""
        envelope.retry_attempt += 1
        if self.request_url is not None:
            await self._post_envelope(envelope)
        else:
            await self._send_envelope(self._sockets[-1], envelope)

    async def drop(self) -> None:
        """Close the live connection without a `disconnect` message (a network drop)."""
        await self._sockets[-1].ws.close(code=1011)

    async def wait_connections(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` Socket Mode connections were opened in all."""
        await self._wait(lambda: self.connections >= count, timeout)

    async def wait_acked(self, timeout: float = 10.0) -> list[Envelope]:
        """Wait until every envelope sent so far was acked; return them."""
        await self._wait(lambda: all(e.acked for e in self.envelopes), timeout)
        return list(self.envelopes)

    async def wait_sent(
        self, count: int = 1, *, channel: str | None = None, timeout: float = 10.0
    ) -> list[Posted]:
        """Wait until the bot posted `count` messages (to `channel`); return them."""

        def matching() -> list[Posted]:
            return [
                p
                for p in self.posted
                if p.method == "chat.postMessage" and channel in (None, p.channel)
            ]

        await self._wait(lambda: len(matching()) >= count, timeout)
        return matching()

    async def wait_posted(
        self, match: Callable[[Posted], bool], *, count: int = 1, timeout: float = 10.0
    ) -> None:
        """Wait until `count` posted messages satisfy `match`."""

        def done() -> bool:
            posts = (p for p in self.posted if p.method == "chat.postMessage")
            return sum(1 for p in posts if match(p)) >= count

        await self._wait(done, timeout)

    async def _wait(self, check: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- Web API --------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        args = await _args(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = token or str(args.get("token", ""))
        script = self._scripts[method]
        if script:
            behaviour = script.popleft()
            if behaviour == "429":
                return web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
                )
            if behaviour == "500":
                return web.Response(status=500, text="internal error")
            return _error(behaviour)
        if not token:
            return _error("not_authed")
        if method == "apps.connections.open":
            if token.startswith("xoxb-"):
                return _error("not_allowed_token_type")
            if token not in self.app_tokens:
                return _error("invalid_auth")
            ticket = secrets.token_hex(8)
            self._tickets.add(ticket)
            return _ok({"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"})
        if token not in self.bot_tokens:
            return _error("invalid_auth")
        handler = _METHODS.get(method)
        if handler is None:
            return _error("unknown_method")
        response = await handler(self, args)
        await self._notify()
        return response

    async def _auth_test(self, args: dict[str, Any]) -> web.Response:
        return _ok(
            {
                "url": "https://clawgate-test.slack.com/",
                "team": "Clawgate Test",
                "user": "clawgate",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        )

    async def _post_message(self, args: dict[str, Any]) -> web.Response:
        channel, text = str(args.get("channel") or ""), str(args.get("text") or "")
        if not channel or channel[0] not in "CDG":
            return _error("channel_not_found")
        if not text:
            return _error("no_text")
        if len(text) > MAX_TEXT:
            return _error("msg_too_long")
        ts = self._next_ts()
        thread_ts = args.get("thread_ts") or None
        self.posted.append(Posted("chat.postMessage", channel, ts, text, thread_ts))
        message = {"type": "message", "text": text, "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts}
        if thread_ts:
            message["thread_ts"] = thread_ts
        return _ok({"channel": channel, "ts": ts, "message": message})

    async def _update(self, args: dict[str, Any]) -> web.Response:
        channel, ts, text = str(args.get("channel")), str(args.get("ts")), str(args.get("text"))
        known = [p for p in self.posted if (p.channel, p.ts) == (channel, ts)]
        if not known:
            return _error("message_not_found")
        self.posted.append(Posted("chat.update", channel, ts, text))
        return _ok({"channel": channel, "ts": ts, "text": text})

    async def _reaction(self, args: dict[str, Any]) -> web.Response:
        channel, ts, name = str(args.get("channel")), str(args.get("timestamp")), args.get("name")
        if any(
            (p.method, p.channel, p.ts, p.reaction) == ("reactions.add", channel, ts, name)
            for p in self.posted
        ):
            return _error("already_reacted")
        self.posted.append(Posted("reactions.add", channel, ts, reaction=str(name)))
        return _ok({})

    async def _upload_url(self, args: dict[str, Any]) -> web.Response:
        name, length = args.get("filename"), str(args.get("length") or "")
        if not name or not length.isdigit():
            return _error("invalid_arguments")
        file_id = f"F{secrets.token_hex(5).upper()}"
        self._uploads[file_id] = (str(name), int(length), None)
        url = f"http://127.0.0.1:{self.port}/upload/v1/{file_id}"
        return _ok({"upload_url": url, "file_id": file_id})

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self._uploads:
            return web.Response(status=404, text="unknown upload")
        name, length, _ = self._uploads[file_id]
        data = await request.read()
        self._uploads[file_id] = (name, length, data)
        return web.Response(text=f"OK - {len(data)}")

    async def _complete_upload(self, args: dict[str, Any]) -> web.Response:
        try:
            files = json.loads(str(args.get("files") or ""))
        except ValueError:
            return _error("invalid_arguments")
        channel = args.get("channel_id")
        if channel is not None and str(channel)[:1] not in ("C", "D", "G"):
            return _error("channel_not_found")
        done = []
        for item in files if isinstance(files, list) else []:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload[2] is None:
                return _error("file_not_found")
            name, _, data = upload
            done.append({"id": item["id"], "title": item.get("title") or name})
            if channel is not None:
                self.posted.append(
                    Posted(
                        "files.completeUploadExternal",
                        str(channel),
                        self._next_ts(),
                        str(args.get("initial_comment") or ""),
                        args.get("thread_ts") or None,
                        file_name=name,
                        file_bytes=len(data or b""),
                    )
                )
        if not done:
            return _error("invalid_arguments")
        return _ok({"files": done})

    # -- Socket Mode ----------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)  # a URL opens one connection only
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        sock = _Socket(ws, ticket)
        self._sockets.append(sock)
        self.connections += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            }
        )
        await self._notify()
        for envelope in self.envelopes:  # Slack redelivers what was never acked
            if not envelope.acked:
                envelope.retry_attempt += 1
                await self._send_envelope(sock, envelope)
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    continue
                envelope_id = data.get("envelope_id") if isinstance(data, dict) else None
                for envelope in self.envelopes:
                    if envelope.envelope_id == envelope_id:
                        envelope.acked = True
                await self._notify()
        finally:
            self._sockets.remove(sock)
            sock.closed.set()
        return ws

    async def _send_envelope(self, sock: _Socket, envelope: Envelope) -> None:
        await sock.ws.send_json(
            {
                "envelope_id": envelope.envelope_id,
                "payload": envelope.payload,
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": envelope.retry_attempt,
                "retry_reason": "timeout" if envelope.retry_attempt else "",
            }
        )


_METHODS: dict[str, Any] = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "reactions.add": FakeSlack._reaction,
    "files.getUploadURLExternal": FakeSlack._upload_url,
    "files.completeUploadExternal": FakeSlack._complete_upload,
}


async def _args(request: web.Request) -> dict[str, Any]:
    """Read a Web API call's arguments: JSON, a form, or the query string."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            args.update(body)
    elif request.can_read_body:
        args.update(parse_qsl(await request.text()))
    return args


def _ok(fields: dict[str, Any]) -> web.Response:
    return web.json_response({"ok": True, **fields})


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})
