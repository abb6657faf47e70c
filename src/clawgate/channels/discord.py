"""Discord through its gateway (WebSocket) and REST API v10, with our own small aiohttp client.

Why not discord.py: it cannot be pointed at another server through supported means. Its
REST root is the class attribute `discord.http.Route.BASE` (only a private helper sets it,
always to discord.com) and its first gateway URL the class attribute
`DiscordWebSocket.DEFAULT_GATEWAY`; using it here would mean patching its internals from
`src/`. Discord's gateway and REST are documented and small for what a chat bridge needs,
so this module speaks them on aiohttp (the gateway's HTTP stack; no extra wheel: the
`discord` extra is empty), and the tests check the stand-in against discord.py's own
client (`tests/integration/channels/test_discord_standin.py`), so the wire is Discord's.

- Start: `GET /users/@me` (a refused token fails the account once: state `failed`, no
  retry storm), `GET /gateway/bot` for the URL, then the gateway with `v=10&encoding=json`:
  HELLO -> IDENTIFY (intents GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES and the privileged
  MESSAGE_CONTENT) -> READY, heartbeats every `heartbeat_interval` (the first after a
  random fraction of it), a heartbeat without an ACK closes the zombie socket.
- A dropped socket is resumed: the supervisor restarts `run()` with backoff and jitter and
  the adapter, which keeps `session_id`, `resume_gateway_url` and the last sequence number
  *handled*, sends RESUME; Discord replays what came meanwhile. op 7 RECONNECT resumes at
  once; op 9 INVALID_SESSION (not resumable) waits 1-5 s, as Discord asks, and IDENTIFIEs
  afresh; close 4004 is a refused token and 4013/4014 wrong intents (both `failed`, with
  what to fix). The pure rules are in `discord_protocol.py`.
- MESSAGE_CREATE -> `InboundMessage` (id = the message's snowflake, so a redelivered
  message is deduplicated): DMs; guild channels, mention-gated by `<@bot>` (taken out of the
  text); a message in a thread is its parent channel's, with the thread as its own session.
  Bots, webhooks and system messages are skipped.
- Replies go to the thread or channel they came from, the first chunk as a reply
  (`message_reference`) in guilds, in chunks of 2,000 characters (Discord's limit), with
  `allowed_mentions` limited to users so a reply never pings @everyone or a role. Each
  REST route's `X-RateLimit-*` bucket is waited out before it is used again; a 429 raises
  `RateLimited` with the body's `retry_after` (global ones for the whole account).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from functools import partial
from typing import Any, Final

import aiohttp

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    InboundMessage,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Target,
)
from .discord_protocol import (
    CloseAction,
    DiscordGatewayMachine,
    Op,
    RateLimits,
    close_action,
    normalize,
    retry_after,
)

__all__ = ["MAX_TEXT", "DiscordAdapter"]

logger = logging.getLogger(__name__)

#: Discord refuses message content longer than 2,000 characters.
MAX_TEXT: Final = 2000
#: How long to wait for HELLO after the socket opens.
HELLO_TIMEOUT_S: Final = 20.0
#: Gateway frames up to this size are read (a big guild's GUILD_CREATE is large).
MAX_FRAME: Final = 16 * 1024 * 1024
#: A rate-limit wait longer than this is not slept inline: `RateLimited` hands it to the outbox.
MAX_INLINE_WAIT_S: Final = 5.0
#: How long a turn runs before "typing..." is shown (renewals wait it too; still < 10 s).
TYPING_GRACE_S: Final = 0.5
#: Messages being delivered (persisted) at once; the reader waits when this many are open.
MAX_IN_FLIGHT: Final = 64
# Concurrent REST requests per account (replies to different chats go out side by side).
POOL_SIZE: Final = 32
_USER_AGENT: Final = "DiscordBot (https://github.com/clawgate/clawgate, 1) clawgate"
_MENTIONS: Final = {"parse": ["users"]}


class DiscordAdapter:
    """One Discord bot: the gateway for events, REST for replies."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        token = (account.secret or "").strip()
        if not token or any(c.isspace() for c in token) or token.lower().startswith("bot "):
            raise AuthFailed(
                f"the {account.key} bot token is malformed ({account.secret_source}); copy it"
                " from the Developer Portal (Applications > your app > Bot > Reset Token),"
                " without a `Bot ` prefix"
            )
        self._account = account
        self._link = link
        self._token = token
        self._api_base: str = str(account.options["api_base"]).rstrip("/")
        self._machine = DiscordGatewayMachine(token)
        self._chat_tails: dict[str, asyncio.Task[None]] = {}
        self._limits = RateLimits()
        self._session: aiohttp.ClientSession | None = None
        self._rand = random.random
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            threads=True,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=150.0,  # over three of Discord's 41.25 s heartbeats
        )
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE),
                headers={"Authorization": f"Bot {self._token}", "User-Agent": _USER_AGENT},
            )
        return self._session

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect to the gateway (resuming a kept session) and receive until cancelled."""
        machine = self._machine
        if not machine.bot_id:
            me = await self._rest("GET", "/users/@me")
            machine.bot_id = str(me.get("id") or "")
        while True:
            if machine.session_id is None:
                found = await self._rest("GET", "/gateway/bot")
                machine.gateway_url = str(found.get("url") or "")
            await self._connection()  # returns when Discord asks for a new connection now

    async def _connection(self) -> None:
        """Run one gateway socket; return to reconnect at once, raise to back off."""
        machine = self._machine
        try:
            ws = await self._http().ws_connect(
                machine.connect_url(), autoping=True, max_msg_size=MAX_FRAME
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(f"cannot reach the Discord gateway: {type(exc).__name__}") from None
        acked = asyncio.Event()
        zombie = asyncio.Event()
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                hello = _payload(await ws.receive())
            data = hello.get("d") if hello else None
            if not hello or hello.get("op") != Op.HELLO or not isinstance(data, dict):
                raise ChannelError("the Discord gateway did not say HELLO")
            interval = float(data.get("heartbeat_interval") or 41_250) / 1000
            await ws.send_str(json.dumps(machine.after_hello()))
            # Owned here: cancelled in `finally` whichever way the socket ends.
            beat = asyncio.create_task(self._heartbeat(ws, interval, acked, zombie))
            try:
                again = await self._receive(ws, acked)
            finally:
                beat.cancel()
                await asyncio.wait({beat})  # never raises; the heartbeat's own end is moot
            if again:
                return
        except TimeoutError:
            raise ChannelError("the Discord gateway did not say HELLO in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ChannelError(
                f"the Discord gateway connection failed: {type(exc).__name__}"
            ) from None
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close(code=4000)  # not 1000: that would end the session
        if zombie.is_set():
            # We closed a zombie socket ourselves: its close code is only the echo of ours.
            raise ChannelError("no heartbeat ACK from the Discord gateway; resuming")
        action, reason = close_action(ws.close_code)
        if action is CloseAction.AUTH_FAILED:
            machine.forget()
            raise AuthFailed(f"{reason}; check [channels.discord] token of {self._account.key}")
        if action is CloseAction.FATAL:
            raise AuthFailed(reason)
        if action is CloseAction.IDENTIFY:
            machine.forget()
        raise ChannelError(reason)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, acked: asyncio.Event) -> bool:
        """Read frames until the socket closes; return True to reconnect at once.

        Messages are handed to `link.deliver` side by side (its writes share commits), up
        to `MAX_IN_FLIGHT`, in the order they came; a dispatch counts as handled, and its
        sequence number may be resumed from, only once it and all before it are.
        """
        machine = self._machine
        pending: deque[tuple[Any, asyncio.Task[None] | None]] = deque()
        try:
            async for frame in ws:
                payload = _payload(frame)
                if payload is None:
                    continue  # binary, unparsable or not an object: skipped
                op = payload.get("op")
                if op == Op.DISPATCH:
                    task = await self._dispatch(payload.get("t"), payload.get("d"))
                    pending.append((payload.get("s"), task))
                    await self._settle(pending, MAX_IN_FLIGHT)
                    self._link.progress()
                elif op == Op.HEARTBEAT_ACK:
                    acked.set()
                    self._link.progress()
                elif op == Op.HEARTBEAT:
                    await ws.send_str(json.dumps(machine.heartbeat()))
                elif op == Op.RECONNECT:
                    await self._settle(pending, 0)
                    return True
                elif op == Op.INVALID_SESSION:
                    await self._settle(pending, 0)
                    machine.on_invalid_session(payload.get("d"))
                    await asyncio.sleep(1 + 4 * self._rand())
                    return True
            await self._settle(pending, 0)
            return False
        finally:
            # Cancelled or failed: what was not handled stays after `seq` and is replayed.
            for _, task in pending:
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for _, t in pending if t is not None), return_exceptions=True)

    async def _settle(
        self, pending: deque[tuple[Any, asyncio.Task[None] | None]], keep: int
    ) -> None:
        """Count finished dispatches as handled, in order; wait while more than `keep` are open."""
        while pending:
            seq, task = pending[0]
            if task is not None and not task.done():
                if len(pending) <= keep:
                    return
                await asyncio.wait({task})
            if task is not None:
                task.result()  # a failed delivery ends the socket; the resume replays it
            pending.popleft()
            self._machine.handled(seq)

    def _forget_tail(self, chat: str, task: asyncio.Task[None]) -> None:
        if self._chat_tails.get(chat) is task:
            del self._chat_tails[chat]

    async def _deliver_after(
        self, before: asyncio.Task[None] | None, message: InboundMessage
    ) -> None:
        """Hand `message` to the layer once the chat's previous message was handed over."""
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        await self._link.deliver(message)

    async def _dispatch(self, name: Any, data: Any) -> asyncio.Task[None] | None:
        """Act on one dispatch; return the delivery of a message, started, if it is one."""
        machine = self._machine
        if name == "MESSAGE_CREATE":
            await self._learn_thread(data)
            message = normalize(data, machine.bot_id, self._account, machine.threads)
            if message is None:
                return None
            # Started now; one chat's messages are handed over one after another (their
            # order is the session's), different chats' side by side.
            before = self._chat_tails.get(message.chat.id)
            task = asyncio.create_task(self._deliver_after(before, message))
            self._chat_tails[message.chat.id] = task
            task.add_done_callback(partial(self._forget_tail, message.chat.id))
            return task
        machine.on_dispatch(str(name), data)
        if name in ("READY", "RESUMED"):
            self._link.connected()
        return None

    async def _learn_thread(self, data: Any) -> None:
        """Fetch a guild channel never seen, to tell a thread from a channel."""
        machine = self._machine
        if not isinstance(data, dict) or data.get("guild_id") is None:
            return
        channel = data.get("channel_id")
        if (
            not isinstance(channel, str)
            or channel in machine.threads
            or channel in machine.channels
        ):
            return
        machine.channels.add(channel)  # asked once; a failed lookup counts it a channel
        try:
            found = await self._rest("GET", f"/channels/{channel}")
        except (ChannelError, RateLimited):
            return
        machine.learn_channel(found)

    async def _heartbeat(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        interval: float,
        acked: asyncio.Event,
        zombie: asyncio.Event,
    ) -> None:
        """Send op 1 every `interval`; a heartbeat left unacknowledged closes the socket."""
        await asyncio.sleep(interval * self._rand())
        acked.set()
        while True:
            if not acked.is_set():
                self._log.info("no heartbeat ACK from the Discord gateway; reconnecting")
                zombie.set()
                await ws.close(code=4000)
                return
            acked.clear()
            await ws.send_str(json.dumps(self._machine.heartbeat()))
            await asyncio.sleep(interval)

    # -- sending --------------------------------------------------------------------

    async def send_text(self, target: Target, text: str) -> str:
        """Post one chunk into the target's thread or channel; return the message id."""
        body: dict[str, Any] = {"content": text, "allowed_mentions": _MENTIONS}
        if target.reply_to and target.reply_to.isdigit():
            body["message_reference"] = {
                "message_id": target.reply_to,
                "fail_if_not_exists": False,
            }
        channel = target.thread_id or target.chat_id
        message = await self._rest("POST", f"/channels/{channel}/messages", body)
        return str(message.get("id") or "")

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Not declared (`capabilities.media` is False): the layer never calls it."""
        raise PermanentSendError("the Discord channel sends text only")

    async def typing(self, target: Target) -> None:
        """Show "typing..." in the target's thread or channel (Discord shows it ~10 s).

        Each notice waits `TYPING_GRACE_S` first: the layer cancels typing when the agent
        is done, so a quick answer goes out without a request for a notice nobody sees.
        """
        await asyncio.sleep(TYPING_GRACE_S)
        await self._rest("POST", f"/channels/{target.thread_id or target.chat_id}/typing")

    async def logout(self) -> None:
        """Forget the gateway session (Discord keeps nothing else for a bot)."""
        self._machine.forget()

    async def close(self) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # -- REST -----------------------------------------------------------------------

    async def _rest(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Call the REST API, waiting out the route's bucket; map errors to the layer's."""
        route = f"{method} {path}"
        loop = asyncio.get_running_loop()
        wait = self._limits.wait(route, loop.time())
        if wait > MAX_INLINE_WAIT_S:
            raise RateLimited(f"Discord's rate limit asks to wait {wait:.1f} s", wait)
        if wait > 0:
            await asyncio.sleep(wait)
        self._limits.sent(route)
        try:
            async with self._http().request(
                method, f"{self._api_base}{path}", json=body
            ) as response:
                status = response.status
                data: Any = None
                if status != 204:
                    with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                        data = await response.json(content_type=None)
                now = loop.time()
                self._limits.update(route, response.headers, now)
                if status == 429:
                    seconds, is_global = retry_after(data, response.headers)
                    self._limits.limited(route, seconds, is_global, now)
                    raise RateLimited(
                        f"Discord asked to wait {seconds:g} s", seconds, account_wide=is_global
                    )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(f"network error talking to Discord: {type(exc).__name__}") from None
        if status < 300:
            return data if isinstance(data, dict) else {}
        message = data.get("message") if isinstance(data, dict) else None
        code = data.get("code") if isinstance(data, dict) else None
        detail = (
            f"HTTP {status}"
            + (f" {message}" if message else "")
            + (f" (code {code})" if code else "")
        )
        if status == 401:
            raise AuthFailed(
                f"Discord refused the {self._account.key} bot token (401 Unauthorized);"
                " reset it on the app's Bot page and set it again"
            )
        if status in (400, 403, 404, 413):
            raise PermanentSendError(f"Discord refused the request: {detail}")
        raise ChannelError(f"Discord answered {detail}")


def _payload(frame: aiohttp.WSMessage) -> dict[str, Any] | None:
    """Return a text frame's JSON object, or None for anything else."""
    if frame.type is not aiohttp.WSMsgType.TEXT:
        return None
    try:
        payload = json.loads(frame.data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
