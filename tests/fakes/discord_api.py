"""A local stand-in for Discord: the REST API (v10) over HTTP and the gateway over a WebSocket.

Served on loopback; `[channels.discord] api_base` points at `http://127.0.0.1:PORT/api/v10`
and every request carries `Authorization: Bot <token>`, as on discord.com. Implemented, with
the shapes of Discord's developer documentation:

- `GET /gateway/bot` -> `{url, shards, session_start_limit}` (the URL is this server's
  `ws://127.0.0.1:PORT/gateway`), `GET /gateway` -> `{url}`;
- `GET /users/@me` -> the bot's user object (`id`, `username`, `bot: true`, ...);
  `GET /oauth2/applications/@me` -> the application (discord.py asks at login);
- `GET /channels/{id}` -> a channel object (type 1 DM, 0 text, 11 public thread with
  `parent_id`); unknown -> 404 `{"message": "Unknown Channel", "code": 10003}`;
- `POST /channels/{id}/messages` (`content`, `message_reference: {message_id, ...}`) -> the
  message object; empty -> 400 code 50006; over 2,000 characters -> 400 code 50035
  (`errors.content._errors[].code` `BASE_TYPE_MAX_LENGTH`);
- `POST /channels/{id}/typing` -> 204.

A bad token is 401 `{"message": "401: Unauthorized", "code": 0}`. Every answer carries the
`X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket` headers of a per-channel bucket
(`bucket_limit` requests per `bucket_window_s`); a request over it, or one scripted with
`"429"`, is 429 with `Retry-After` (whole seconds), `X-RateLimit-Scope` and the body
`{"message": "You are being rate limited.", "retry_after": <s>, "global": false}`.

The gateway (`?v=10&encoding=json`, optionally `compress=zlib-stream`, then every frame is
binary, one zlib stream per connection flushed with Z_SYNC_FLUSH as Discord does): op 10
HELLO (`heartbeat_interval`), op 2 IDENTIFY (`token`, `intents`, `properties`) answered by
a READY dispatch (`v`, `user`, `guilds`, `session_id`, `resume_gateway_url`,
`application`) and a GUILD_CREATE per guild (its `channels` and `threads`); op 1 heartbeat
-> op 11 ACK; dispatches (op 0) carry `s`, numbered per session; op 6 RESUME (`token`,
`session_id`, `seq`) replays every dispatch after `seq` then sends RESUMED, or op 9
INVALID_SESSION `false` for an unknown session; a bad token closes with 4004
"Authentication failed.", a privileged intent the app lacks with 4014.

A test plays the human with `user_says(...)`, reads what the bot posted in `posted`
(`wait_posted(...)`), and breaks things with `drop()` (close 4000, the session stays
resumable), `invalidate()` (op 9), `redeliver(...)`, `send_dispatch(...)`, `send_raw(...)`
and `script("messages", "429", "500", ...)`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import secrets
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

__all__ = [
    "APP_ID",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "CHANNEL_ID",
    "GUILD_ID",
    "THREAD_ID",
    "FakeDiscord",
    "Posted",
]

BOT_USER_ID = "1100000000000000001"
APP_ID = BOT_USER_ID
GUILD_ID = "1200000000000000001"
CHANNEL_ID = "1300000000000000001"
THREAD_ID = "1300000000000000099"
BOT_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GfAkEt.fake-discord-bot-token-for-tests"
MAX_CONTENT = 2000
#: Intents Discord calls privileged: GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT.
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
_EPOCH_MS = 1_420_070_400_000  # Discord's snowflake epoch


def snowflake(ms: int | None = None, increment: int = 0) -> str:
    """Return a snowflake id for the time `ms` (now by default)."""
    stamp = int(time.time() * 1000) if ms is None else ms
    return str(((stamp - _EPOCH_MS) << 22) | (increment & 0xFFF))


@dataclass
class Posted:
    """A message the bot posted, or a typing indicator it triggered."""

    kind: str  # "message" or "typing"
    channel_id: str
    id: str = ""
    content: str = ""
    reference: str | None = None


@dataclass
class _Session:
    session_id: str
    events: list[tuple[int, str, Any]] = field(default_factory=list)
    seq: int = 0


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    compress: Any | None
    session: _Session | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def _user(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name.capitalize(),
        "avatar": None,
    }
    if bot:
        user["bot"] = True
    return user


class FakeDiscord:
    """A running stand-in; `api_base` goes into config."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.calls: list[str] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        # False: heartbeats go unanswered (a zombie connection, as the client should notice).
        self.ack_heartbeats = True
        # Requests refused with 429 because their bucket was spent (not scripted ones).
        self.limited = 0
        self.connections = 0
        self.tokens = {BOT_TOKEN}
        self.heartbeat_interval_ms = 41_250
        self.allowed_intents = PRIVILEGED_INTENTS
        self.bucket_limit = 1000
        self.bucket_window_s = 1.0
        self.channels: dict[str, dict[str, Any]] = {
            CHANNEL_ID: {
                "id": CHANNEL_ID,
                "type": 0,
                "guild_id": GUILD_ID,
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "topic": None,
                "parent_id": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
            },
            THREAD_ID: {
                "id": THREAD_ID,
                "type": 11,
                "guild_id": GUILD_ID,
                "parent_id": CHANNEL_ID,
                "name": "a thread",
                "owner_id": "1500000000000000001",
                "message_count": 1,
                "member_count": 2,
                "rate_limit_per_user": 0,
                "flags": 0,
                "last_message_id": None,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "locked": False,
                    "archive_timestamp": datetime.now(UTC).isoformat(),
                },
            },
        }
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._buckets: dict[str, tuple[float, int]] = {}
        self._sessions: dict[str, _Session] = {}
        self._current: _Session | None = None
        self._sockets: list[_Socket] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life -----------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        """The REST root (`https://discord.com/api/v10` on Discord)."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The gateway URL `GET /gateway/bot` hands out."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
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

    def script(self, route: str, *behaviours: str) -> None:
        """Make the next calls of `route` ("messages", "typing", "me") misbehave."""
        self._scripts[route].extend(behaviours)

    def dm_channel(self, user_id: str) -> str:
        """Return (creating) the DM channel id between the bot and `user_id`."""
        channel_id = f"14{user_id[-17:]:0>17}"
        self.channels.setdefault(
            channel_id, {"id": channel_id, "type": 1, "recipients": [_user(user_id, "alice")]}
        )
        return channel_id

    # -- the human side -------------------------------------------------------------

    def message(
        self,
        content: str,
        *,
        user: str = "1500000000000000001",
        name: str = "alice",
        channel: str | None = None,
        mentions: list[str] | None = None,
        bot: bool = False,
    ) -> dict[str, Any]:
        """Return a MESSAGE_CREATE payload (a DM from `user` when `channel` is None)."""
        channel_id = channel or self.dm_channel(user)
        message_id = snowflake(increment=next(self._ids))
        data: dict[str, Any] = {
            "id": message_id,
            "type": 0,
            "channel_id": channel_id,
            "author": _user(user, name, bot=bot),
            "content": content,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [_user(BOT_USER_ID, "clawgate", bot=True)]
            if BOT_USER_ID in (mentions or [])
            else [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "flags": 0,
        }
        guild = self.channels.get(channel_id, {}).get("guild_id")
        if guild is not None:
            data["guild_id"] = guild
            data["member"] = {"roles": [], "joined_at": data["timestamp"], "deaf": False}
        return data

    async def user_says(self, content: str, **kwargs: Any) -> dict[str, Any]:
        """Dispatch a human's message (see `message`); return its payload."""
        data = self.message(content, **kwargs)
        await self.send_dispatch("MESSAGE_CREATE", data)
        return data

    async def redeliver(self, data: dict[str, Any]) -> None:
        """Dispatch a MESSAGE_CREATE again, with a new sequence number."""
        await self.send_dispatch("MESSAGE_CREATE", data)

    async def send_dispatch(self, name: str, data: Any) -> None:
        """Record a dispatch in the current session and send it if a socket is live."""
        session = self._current
        if session is None:
            raise AssertionError("no session: wait_ready() first")
        session.seq += 1
        session.events.append((session.seq, name, data))
        for sock in self._sockets:
            if sock.session is session:
                await self._send(sock, {"op": 0, "t": name, "s": session.seq, "d": data})

    async def send_raw(self, text: str) -> None:
        """Send a text frame as it is to every live socket (garbage, unknown ops)."""
        for sock in list(self._sockets):
            await self._send_text(sock, text)

    async def drop(self, code: int = 4000) -> None:
        """Close the live sockets (4000 "Unknown error": the session stays resumable)."""
        for sock in list(self._sockets):
            await sock.ws.close(code=code, message=b"Unknown error.")

    async def invalidate(self) -> None:
        """Forget the current session and tell the live socket so (op 9, not resumable)."""
        session = self._current
        if session is not None:
            self._sessions.pop(session.session_id, None)
            self._current = None
        for sock in list(self._sockets):
            sock.session = None
            await self._send(sock, {"op": 9, "d": False})

    async def wait_ready(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `count` sessions were identified or resumed in all."""
        await self._wait(lambda: len(self.identifies) + len(self.resumes) >= count, timeout)

    async def wait_posted(
        self,
        match: Callable[[Posted], bool] = lambda p: True,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Posted]:
        """Wait until `count` posted messages satisfy `match`; return them."""

        def matching() -> list[Posted]:
            return [p for p in self.posted if p.kind == "message" and match(p)]

        await self._wait(lambda: len(matching()) >= count, timeout)
        return matching()

    async def _wait(self, check: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- REST -----------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = request.match_info["path"].strip("/")
        parts = path.split("/")
        self.calls.append(f"{request.method} /{path}")
        route = {"users": "me", "gateway": "gateway"}.get(parts[0], parts[-1])
        if not request.headers.get("Authorization", "").startswith("Bot "):
            return _error(401, "401: Unauthorized", 0)
        token = request.headers["Authorization"].removeprefix("Bot ").strip()
        if token not in self.tokens:
            return _error(401, "401: Unauthorized", 0)
        bucket = f"{request.method} /{path}"
        script = self._scripts[route]
        if script:
            behaviour = script.popleft()
            if behaviour == "429":
                return self._limited(bucket, 1.0)
            if behaviour == "500":
                return _json({"message": "500: Internal Server Error", "code": 0}, status=500)
        headers, over = self._take(bucket)
        if over is not None:
            self.limited += 1
            return self._limited(bucket, over)
        try:
            response = await self._route(request, request.method, parts)
        finally:
            await self._notify()
        response.headers.update(headers)
        return response

    async def _route(self, request: web.Request, method: str, parts: list[str]) -> web.Response:
        if method == "GET" and parts == ["gateway", "bot"]:
            limit = {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            }
            return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})
        if method == "GET" and parts == ["gateway"]:
            return _json({"url": self.gateway_url})
        if method == "GET" and parts == ["users", "@me"]:
            me = {
                **_user(BOT_USER_ID, "clawgate", bot=True),
                "verified": True,
                "flags": 0,
                "mfa_enabled": False,
            }
            return _json(me)
        if method == "GET" and parts == ["oauth2", "applications", "@me"]:
            return _json(
                {
                    "id": APP_ID,
                    "name": "clawgate",
                    "icon": None,
                    "description": "",
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "flags": 0,
                    "verify_key": "0" * 64,
                    "owner": _user("1500000000000000001", "alice"),
                    "team": None,
                    "bot": _user(BOT_USER_ID, "clawgate", bot=True),
                }
            )
        if parts[0] == "channels" and len(parts) >= 2:
            channel = self.channels.get(parts[1])
            if channel is None:
                return _error(404, "Unknown Channel", 10003)
            if method == "GET" and len(parts) == 2:
                return _json(channel)
            if method == "POST" and parts[2:] == ["typing"]:
                self.posted.append(Posted("typing", parts[1]))
                return web.Response(status=204)
            if method == "POST" and parts[2:] == ["messages"]:
                return await self._create_message(request, channel)
        return _error(404, "404: Not Found", 0)

    async def _create_message(self, request: web.Request, channel: dict[str, Any]) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "400: Bad Request", 0)
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            return _error(400, "Cannot send an empty message", 50006)
        if len(content) > MAX_CONTENT:
            errors = {
                "content": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": f"Must be {MAX_CONTENT} or fewer in length.",
                        }
                    ]
                }
            }
            return _json(
                {"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400
            )
        reference = body.get("message_reference")
        ref_id = reference.get("message_id") if isinstance(reference, dict) else None
        message_id = snowflake(increment=next(self._ids))
        self.posted.append(
            Posted("message", channel["id"], message_id, content, str(ref_id) if ref_id else None)
        )
        message: dict[str, Any] = {
            "id": message_id,
            "type": 19 if ref_id else 0,
            "channel_id": channel["id"],
            "author": _user(BOT_USER_ID, "clawgate", bot=True),
            "content": content,
            "timestamp": datetime.now(UTC).isoformat(),
            "mentions": [],
            "attachments": [],
            "embeds": [],
        }
        if ref_id:
            message["message_reference"] = {"message_id": ref_id, "channel_id": channel["id"]}
        return _json(message)

    def _take(self, bucket: str) -> tuple[dict[str, str], float | None]:
        """Count a request in its bucket; return its headers and, when over, the wait."""
        now = time.monotonic()
        start, used = self._buckets.get(bucket, (now, 0))
        if now - start >= self.bucket_window_s:
            start, used = now, 0
        reset_after = max(self.bucket_window_s - (now - start), 0.001)
        if used >= self.bucket_limit:
            return {}, reset_after
        used += 1
        self._buckets[bucket] = (start, used)
        headers = {
            "X-RateLimit-Limit": str(self.bucket_limit),
            "X-RateLimit-Remaining": str(self.bucket_limit - used),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"{abs(hash(bucket)):x}"[:12],
        }
        return headers, None

    def _limited(self, bucket: str, retry_after: float) -> web.Response:
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": False,
        }
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": str(self.bucket_limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": f"{abs(hash(bucket)):x}"[:12],
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",  # Discord's edge; a 429 without it is a Cloudflare ban
        }
        return _json(body, status=429, headers=headers)

    # -- gateway --------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("v") != "10" or request.query.get("encoding", "json") != "json":
            return web.Response(status=400, text="v=10&encoding=json only")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        compress = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        sock = _Socket(ws, compress)
        self._sockets.append(sock)
        self.connections += 1
        await self._send(
            sock,
            {
                "op": 10,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                "s": None,
                "t": None,
            },
        )
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(frame.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                if not await self._on_op(sock, payload):
                    break
        finally:
            self._sockets.remove(sock)
            sock.closed.set()
            await self._notify()
        return ws

    async def _on_op(self, sock: _Socket, payload: Any) -> bool:
        """Answer one client payload; return False once the socket is closed."""
        op = payload.get("op") if isinstance(payload, dict) else None
        data = payload.get("d") if isinstance(payload, dict) else None
        if op == 1:
            self.heartbeats += 1
            if self.ack_heartbeats:
                await self._send(sock, {"op": 11, "d": None, "s": None, "t": None})
            await self._notify()
            return True
        if op == 2 and isinstance(data, dict):
            if data.get("token") not in self.tokens:
                await sock.ws.close(code=4004, message=b"Authentication failed.")
                return False
            intents = int(data.get("intents") or 0)
            if intents & PRIVILEGED_INTENTS & ~self.allowed_intents:
                await sock.ws.close(code=4014, message=b"Disallowed intent(s).")
                return False
            self.identifies.append(data)
            session = _Session(secrets.token_hex(16))
            self._sessions[session.session_id] = session
            self._current = session
            sock.session = session
            await self.send_dispatch(
                "READY",
                {
                    "v": 10,
                    "user": {
                        **_user(BOT_USER_ID, "clawgate", bot=True),
                        "verified": True,
                        "flags": 0,
                    },
                    "guilds": [{"id": GUILD_ID, "unavailable": True}],
                    "session_id": session.session_id,
                    "resume_gateway_url": self.gateway_url,
                    "application": {"id": APP_ID, "flags": 0},
                    "private_channels": [],
                    "relationships": [],
                    "user_settings": {},
                    "presences": [],
                    "guild_join_requests": [],
                    "geo_ordered_rtc_regions": [],
                    "_trace": ["clawgate-fake-discord"],
                },
            )
            await self.send_dispatch("GUILD_CREATE", self._guild())
            await self._notify()
            return True
        if op == 6 and isinstance(data, dict):
            if data.get("token") not in self.tokens:
                await sock.ws.close(code=4004, message=b"Authentication failed.")
                return False
            found = self._sessions.get(str(data.get("session_id")))
            if found is None:
                await self._send(sock, {"op": 9, "d": False, "s": None, "t": None})
                return True
            self.resumes.append(data)
            sock.session = found
            self._current = found
            seq = int(data.get("seq") or 0)
            for number, name, event in found.events:
                if number > seq:
                    await self._send(sock, {"op": 0, "t": name, "s": number, "d": event})
            await self.send_dispatch("RESUMED", {"_trace": ["clawgate-fake-discord"]})
            await self._notify()
            return True
        if op in (3, 4, 8):  # presence, voice, member requests: accepted, nothing to do
            return True
        await sock.ws.close(code=4001, message=b"Unknown opcode.")
        return False

    def _guild(self) -> dict[str, Any]:
        channels = [c for c in self.channels.values() if c["type"] in (0, 2, 4, 5)]
        threads = [c for c in self.channels.values() if c["type"] in (10, 11, 12)]
        return {
            "id": GUILD_ID,
            "name": "Clawgate Test",
            "unavailable": False,
            "owner_id": "1500000000000000001",
            "member_count": 2,
            "large": False,
            "joined_at": datetime.now(UTC).isoformat(),
            "roles": [
                {
                    "id": GUILD_ID,
                    "name": "@everyone",
                    "permissions": "0",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                }
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [{k: v for k, v in c.items() if k != "guild_id"} for c in channels],
            "threads": threads,
            "members": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def _send(self, sock: _Socket, payload: dict[str, Any]) -> None:
        await self._send_text(sock, json.dumps(payload))

    async def _send_text(self, sock: _Socket, text: str) -> None:
        if sock.ws.closed:
            return
        try:
            if sock.compress is not None:
                data = sock.compress.compress(text.encode()) + sock.compress.flush(
                    zlib.Z_SYNC_FLUSH
                )
                await sock.ws.send_bytes(data)
            else:
                await sock.ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            pass


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Answer JSON as Discord does: `Content-Type: application/json`, no charset."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _error(status: int, message: str, code: int) -> web.Response:
    return _json({"message": message, "code": code}, status=status)
