"""Discord's gateway and REST rules, without I/O: the session machine, messages, rate limits.

`DiscordGatewayMachine` holds what survives a dropped socket (the session id, the last
sequence number handled, the resume URL) and decides what to say after HELLO (IDENTIFY,
or RESUME when a session is known) and what a close code or an INVALID_SESSION means.
`normalize` reads a MESSAGE_CREATE; `RateLimits` keeps each REST bucket's headers and
says how long to wait before the next request on it. Time is passed in; nothing here
reads a clock or a socket (`channels/discord.py` is the shell).

Invariant: `seq` is the sequence number of the last dispatch the shell *handled* (for a
message: `link.deliver` returned, so it is persisted), never just received, so a RESUME
asks Discord to replay everything not yet persisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .base import AccountConfig, ChatKind, ChatRef, InboundMessage, Sender

__all__ = [
    "INTENTS",
    "CloseAction",
    "DiscordGatewayMachine",
    "Op",
    "RateLimits",
    "close_action",
    "normalize",
    "retry_after",
]


class Op:
    """Gateway opcodes (Discord developer docs, "Opcodes and Status Codes")."""

    DISPATCH: Final = 0
    HEARTBEAT: Final = 1
    IDENTIFY: Final = 2
    RESUME: Final = 6
    RECONNECT: Final = 7
    INVALID_SESSION: Final = 9
    HELLO: Final = 10
    HEARTBEAT_ACK: Final = 11


GUILDS: Final = 1 << 0
GUILD_MESSAGES: Final = 1 << 9
DIRECT_MESSAGES: Final = 1 << 12
#: Privileged: enable "Message Content Intent" on the app's Bot page, or close code 4014.
MESSAGE_CONTENT: Final = 1 << 15
#: What the adapter asks for: guild channels and threads, their messages, DMs, and content.
INTENTS: Final = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT

#: Channel types that are threads (announcement, public, private).
THREAD_TYPES: Final = frozenset({10, 11, 12})
#: Message types a person writes: DEFAULT and REPLY.
_PERSON_TYPES: Final = frozenset({0, 19})


class CloseAction(StrEnum):
    """What to do after the gateway closed the socket with a code."""

    RESUME = "resume"  # reconnect and RESUME the session
    IDENTIFY = "identify"  # reconnect with a fresh IDENTIFY (the session is gone)
    AUTH_FAILED = "auth_failed"  # the token was refused: stop, no retries
    FATAL = "fatal"  # the app's setup is wrong (intents, shards, version): stop


#: Close codes after which reconnecting cannot help, with what to tell the user.
_FATAL: Final = {
    4004: "Discord refused the bot token (close 4004 Authentication failed)",
    4010: "Discord refused the shard sent (close 4010)",
    4011: "Discord requires sharding for this bot (close 4011)",
    4012: "Discord refused the gateway version (close 4012)",
    4013: "Discord refused the intents (close 4013 Invalid intent(s))",
    4014: (
        "Discord refused a privileged intent (close 4014): enable Message Content Intent on"
        " the app's Bot page in the Developer Portal"
    ),
}
#: Close codes that end the session: reconnect with IDENTIFY (and what a clean 1000 does).
_NEW_SESSION: Final = frozenset({1000, 1001, 4007, 4009})


def close_action(code: int | None) -> tuple[CloseAction, str]:
    """Return what a close `code` asks for, and a one-line reason."""
    if code in _FATAL:
        action = CloseAction.AUTH_FAILED if code == 4004 else CloseAction.FATAL
        return action, _FATAL[code]
    if code in _NEW_SESSION:
        return CloseAction.IDENTIFY, f"the gateway ended the session (close {code})"
    return CloseAction.RESUME, f"the gateway connection closed (code {code})"


@dataclass(slots=True)
class DiscordGatewayMachine:
    """One bot's gateway session across sockets: what to send, what to keep."""

    token: str = field(repr=False)
    intents: int = INTENTS
    gateway_url: str = ""
    session_id: str | None = None
    resume_url: str | None = None
    seq: int | None = None
    bot_id: str = ""
    # Thread channel id -> its parent channel id (from GUILD_CREATE, THREAD_CREATE, ...).
    threads: dict[str, str] = field(default_factory=dict)
    # Guild channel ids known not to be threads.
    channels: set[str] = field(default_factory=set)

    def connect_url(self, version: int = 10) -> str:
        """Return the URL to open: the resume URL while a session is kept, else the gateway's."""
        base = (self.resume_url if self.session_id else None) or self.gateway_url
        return f"{base.rstrip('/')}/?v={version}&encoding=json"

    def after_hello(self) -> dict[str, Any]:
        """Return the payload to send after HELLO: RESUME a kept session, else IDENTIFY."""
        if self.session_id is not None:
            data = {"token": self.token, "session_id": self.session_id, "seq": self.seq}
            return {"op": Op.RESUME, "d": data}
        properties = {"os": "linux", "browser": "clawgate", "device": "clawgate"}
        identify = {"token": self.token, "intents": self.intents, "properties": properties}
        return {"op": Op.IDENTIFY, "d": identify}

    def heartbeat(self) -> dict[str, Any]:
        """Return an op 1 heartbeat carrying the last sequence number handled."""
        return {"op": Op.HEARTBEAT, "d": self.seq}

    def handled(self, seq: int | None) -> None:
        """Record that the dispatch numbered `seq` was handled (never move backwards)."""
        if isinstance(seq, int) and (self.seq is None or seq > self.seq):
            self.seq = seq

    def on_dispatch(self, name: str, data: Any) -> None:
        """Update the session from a dispatch that is not a message (READY, threads)."""
        if not isinstance(data, dict):
            return
        if name == "READY":
            self.session_id = str(data.get("session_id") or "") or None
            url = data.get("resume_gateway_url")
            self.resume_url = url if isinstance(url, str) and url else None
            user = data.get("user")
            if isinstance(user, dict) and user.get("id"):
                self.bot_id = str(user["id"])
        elif name == "GUILD_CREATE":
            for channel in [*_list(data.get("channels")), *_list(data.get("threads"))]:
                self._learn(channel)
        elif name in ("THREAD_CREATE", "THREAD_UPDATE", "CHANNEL_CREATE"):
            self._learn(data)
        elif name == "THREAD_LIST_SYNC":
            for channel in _list(data.get("threads")):
                self._learn(channel)
        elif name == "THREAD_DELETE":
            self.threads.pop(str(data.get("id")), None)

    def learn_channel(self, channel: Any) -> None:
        """Remember a channel object fetched over REST when it is a thread."""
        self._learn(channel)

    def _learn(self, channel: Any) -> None:
        if not isinstance(channel, dict):
            return
        channel_id = channel.get("id")
        if not channel_id:
            return
        kind = channel.get("type")
        if isinstance(kind, int) and kind in THREAD_TYPES and channel.get("parent_id"):
            self.threads[str(channel_id)] = str(channel["parent_id"])
        else:
            self.channels.add(str(channel_id))

    def on_invalid_session(self, resumable: Any) -> None:
        """Forget the session unless Discord said it may be resumed (op 9 `d`)."""
        if resumable is not True:
            self.forget()

    def forget(self) -> None:
        """Drop the session: the next connection IDENTIFIEs afresh."""
        self.session_id = None
        self.resume_url = None
        self.seq = None


def normalize(
    data: Any, bot_id: str, account: AccountConfig, threads: dict[str, str]
) -> InboundMessage | None:
    """Return the channel layer's view of a MESSAGE_CREATE, or None to skip it.

    DMs carry no `guild_id`; in a guild the chat is the channel, or for a thread (known
    in `threads`) its parent channel, with the thread as `thread_id`. Bots (this one
    included), webhooks and system messages are skipped.
    """
    kind = data.get("type", 0) if isinstance(data, dict) else None
    # Checked as an int first: a list or an object is unhashable and `in` would raise.
    if not isinstance(kind, int) or kind not in _PERSON_TYPES:
        return None
    author, content = data.get("author"), data.get("content")
    message_id, channel_id = data.get("id"), data.get("channel_id")
    if not (isinstance(author, dict) and isinstance(content, str) and content.strip()):
        return None
    if not (isinstance(message_id, str) and isinstance(channel_id, str)):
        return None
    user_id = author.get("id")
    if not isinstance(user_id, str) or author.get("bot") or data.get("webhook_id"):
        return None
    if user_id == bot_id:
        return None
    name = author.get("global_name") or author.get("username") or ""
    reference = data.get("message_reference")
    reply_to = reference.get("message_id") if isinstance(reference, dict) else None
    mention_ids = {
        m["id"]
        for m in _list(data.get("mentions"))
        if isinstance(m, dict) and isinstance(m.get("id"), str)
    }
    mention_texts = (f"<@{bot_id}>", f"<@!{bot_id}>")
    if data.get("guild_id") is None:
        chat, thread, mentioned, text = ChatRef(channel_id, ChatKind.DM), None, True, content
    else:
        parent = threads.get(channel_id)
        chat = ChatRef(parent or channel_id, ChatKind.GROUP)
        thread = channel_id if parent else None
        mentioned = bot_id in mention_ids or any(m in content for m in mention_texts)
        for mention in mention_texts:
            content = content.replace(mention, "")
        text = content.strip()
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=message_id,
        sender=Sender(user_id, str(name)),
        chat=chat,
        text=text,
        received_at=_snowflake_ms(message_id),
        thread_id=thread,
        reply_to=str(reply_to) if reply_to else None,
        mentioned=mentioned,
        command=text.startswith("/"),
    )


def _list(value: Any) -> list[Any]:
    """Return `value` if it is a JSON array, else an empty list (a field of another shape)."""
    return value if isinstance(value, list) else []


def _snowflake_ms(snowflake: str) -> int:
    """Return the Unix ms a snowflake id was made at (0 for a malformed one)."""
    try:
        value = int(snowflake)
    except ValueError:
        return 0
    # A snowflake is an unsigned 64-bit number; a larger one's time would not fit SQLite.
    return (value >> 22) + 1_420_070_400_000 if 0 <= value < 2**64 else 0


@dataclass(slots=True)
class _Bucket:
    remaining: int
    resets_at: float


class RateLimits:
    """Each REST route's bucket as its `X-RateLimit-*` headers last described it."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._global_until = 0.0

    def wait(self, route: str, now: float) -> float:
        """Return how long to wait before the next request on `route` (0 to go now)."""
        delay = max(self._global_until - now, 0.0)
        bucket = self._buckets.get(route)
        if bucket is not None and bucket.remaining <= 0:
            delay = max(delay, bucket.resets_at - now)
        return delay

    def sent(self, route: str) -> None:
        """Count a request about to go out on `route` against its known bucket."""
        bucket = self._buckets.get(route)
        if bucket is not None:
            bucket.remaining -= 1

    def update(self, route: str, headers: Any, now: float) -> None:
        """Read a response's rate-limit headers (names in any case) for `route`."""
        remaining = _number(_header(headers, "X-RateLimit-Remaining"))
        reset_after = _number(_header(headers, "X-RateLimit-Reset-After"))
        if remaining is not None and reset_after is not None:
            self._buckets[route] = _Bucket(int(remaining), now + reset_after)

    def limited(self, route: str, retry_after: float, is_global: bool, now: float) -> None:
        """Record a 429: nothing on `route` (or anywhere, when global) before `retry_after`."""
        if is_global:
            self._global_until = max(self._global_until, now + retry_after)
        self._buckets[route] = _Bucket(0, now + retry_after)


def retry_after(body: Any, headers: Any) -> tuple[float, bool]:
    """Return a 429's wait in seconds (the body's `retry_after`, else headers) and globality."""
    wait = _number(body.get("retry_after")) if isinstance(body, dict) else None
    if wait is None:
        wait = _number(_header(headers, "Retry-After"))
    if wait is None:
        wait = _number(_header(headers, "X-RateLimit-Reset-After"))
    is_global = (isinstance(body, dict) and body.get("global") is True) or str(
        _header(headers, "X-RateLimit-Global") or ""
    ).lower() == "true"
    return max(wait if wait is not None else 1.0, 0.0), is_global


def _header(headers: Any, name: str) -> Any:
    if headers is None:
        return None
    value = headers.get(name)
    return value if value is not None else headers.get(name.lower())


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number != float("inf") else None
