"""The one interface every messaging channel implements, and the shapes that cross it.

How to add a channel (Matrix, IRC, ...):

1. Write `channels/<name>.py` (or a package) with a class implementing `ChannelAdapter`:
   an attribute `capabilities`, an `__init__(account, link)` taking its `AccountConfig`
   and an `AccountLink` (raise `AuthFailed` there for a malformed credential), and the
   coroutines below. `channels/telegram.py` is the worked example. Import the platform's
   SDK at the top of that module only (or of a module only it imports, as
   `telegram_request.py`); nothing else imports it. What needs no I/O (reading events,
   building request bodies) goes in `channels/<name>_protocol.py`, which imports the SDK's
   types, if any, under `TYPE_CHECKING` only.
2. Register it in `channels/registry.py` (`ADAPTERS`): module, class and pip extra. The
   manager imports the module only when the channel is configured, and a missing extra
   fails just that channel with a one-line message naming it.
3. Add its config table to `config/channels.py` (`[channels.<name>]`, subclassing `ChannelCommon`
   for the access keys) and its secret keys to `SECRET_KEYS`, and resolve it into
   `AccountConfig`s in `channels/settings.py`.

What an adapter does, and what it leaves to the layer:

- `run()` connects and receives until it is cancelled (that is how it stops). It calls
  `link.connected()` once it is connected and `link.progress()` on every sign of life
  (an answered long poll, a sync, a PONG); the supervisor rebuilds an account whose
  progress stops for `capabilities.stall_after_s`. It raises `AuthFailed` for refused
  credentials (the account goes `failed` and is not retried until logged in again) and
  anything else for a failure worth a restart with backoff.
- Each platform event becomes one `InboundMessage`, handed to `await link.deliver(msg)`.
  When that returns, the message is persisted (or refused): only then may the adapter
  acknowledge it to the platform (advance an offset, answer a webhook, save a sync token
  with `link.save_cursor`). Deduplication, access policy, pairing codes, mention gating,
  debouncing, sessions and runs all happen behind `deliver`. A platform that invites the
  bot into rooms asks `link.may_join(...)` (the same access settings decide).
- Outbound: `send_text` sends one chunk no longer than `capabilities.max_text` (the layer
  splits long replies and retries failures) and returns the platform message id.
  `send_media`, `typing` are called only when the capability says so. Raise
  `RateLimited` on the platform's 429 (the layer waits `retry_after_s` and retries),
  `PermanentSendError` for a send that will never succeed (bad chat, message refused),
  anything else for a transient failure (retried with backoff).
- Editing is optional and kept out of `ChannelAdapter` (most platforms cannot, or do not
  yet): an adapter that can replace the text of a message it posted also implements
  `EditsText` (`edit_text(target, message_id, text)`, `message_id` as `send_text` returned
  it; same exceptions as `send_text`) and declares `capabilities.edits`. The layer streams a
  reply by editing (account option `stream = "edit"`: post once some text exists, edit at
  most once a second, continue past `max_text` in a new message; see `streaming.py`) only
  when both hold; otherwise it sends the whole reply at the end. Slack and Telegram do.
- Reacting is optional the same way: `Reacts` (`react(target, message_id, name)`, the
  inbound message's id) with `capabilities.reactions`. The layer adds the account's
  `ack_reaction` to each message whose turn starts, so the sender sees it was picked up
  (a failed reaction is only logged). Slack does.
- Adapters never see the agent, the store or the gateway, and never log message text or
  credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "AccountConfig",
    "AccountLink",
    "AuthFailed",
    "Capabilities",
    "ChannelAdapter",
    "ChannelError",
    "ChatKind",
    "ChatRef",
    "EditsText",
    "InboundMessage",
    "Media",
    "OutboundMedia",
    "PermanentSendError",
    "RateLimited",
    "Reacts",
    "SecretText",
    "Sender",
    "Target",
    "WebhookHandler",
    "WebhookReply",
    "WebhookRequest",
]


class ChatKind(StrEnum):
    """Whether a chat is a direct conversation or a group (room, channel)."""

    DM = "dm"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform can do, declared by its adapter."""

    dm: bool = True
    groups: bool = True
    threads: bool = False
    media: bool = False
    reactions: bool = False
    edits: bool = False
    typing: bool = False
    # The longest text one message may hold, in characters.
    max_text: int = 4000
    # The supervisor rebuilds an account after this long without `progress()`.
    stall_after_s: float = 120.0


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a message: the platform's stable id and a display name."""

    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ChatRef:
    """Where a message was sent."""

    id: str
    kind: ChatKind
    title: str = ""


@dataclass(frozen=True, slots=True)
class Media:
    """A file that came with a message, already downloaded under the gateway's home."""

    path: str
    mime: str
    size: int
    kind: Literal["photo", "document", "audio", "video", "other"] = "document"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from a platform, normalized; everything downstream works on this only."""

    channel: str
    account_id: str
    message_id: str
    sender: Sender
    chat: ChatRef
    text: str
    received_at: int  # Unix ms
    thread_id: str | None = None
    # "topic" for forum topics (Telegram), "thread" otherwise: it names the session key part.
    thread_kind: Literal["thread", "topic"] = "thread"
    media: tuple[Media, ...] = ()
    reply_to: str | None = None
    mentioned: bool = False
    # A bot command (`/start`), which is never debounced.
    command: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """Where an outbound message goes: a chat, optionally a thread and a message to reply to."""

    chat_id: str
    thread_id: str | None = None
    reply_to: str | None = None
    # What produced the message ("send", "heartbeat", "cron: <job>") and the request or run
    # it belongs to: a channel that keeps a transcript (WebChat) records them; platforms
    # ignore them.
    label: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    """A file to send: a local path or an URL the platform fetches itself."""

    source: str
    caption: str = ""
    kind: Literal["photo", "document"] = "document"


class ChannelError(Exception):
    """A channel operation failed; the message is safe to show (no secrets, no text)."""


class AuthFailed(ChannelError):
    """The platform refused the credentials; retrying will not help until they change."""


class RateLimited(ChannelError):
    """The platform asked to wait (HTTP 429 / `retry_after`)."""

    def __init__(self, message: str, retry_after_s: float, *, account_wide: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.account_wide = account_wide


class PermanentSendError(ChannelError):
    """This send will never succeed (unknown chat, message refused); do not retry it."""


class SecretText(str):
    """A credential kept in `AccountConfig.options`: its repr never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<secret>'"


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One configured account of a channel, resolved from config.toml.

    `options` holds the channel's own keys (api base, mode, ...); `secret` its credential,
    which must never be logged, stored or shown.
    """

    channel: str
    account_id: str
    enabled: bool = True
    dm_policy: Literal["pairing", "allowlist", "open", "disabled"] = "pairing"
    allow_from: tuple[str, ...] = ()
    group_policy: Literal["allowlist", "open", "disabled"] = "allowlist"
    groups: tuple[str, ...] = ()
    require_mention: bool = True
    debounce_ms: int = 1500
    secret: str | None = field(default=None, repr=False)
    # Where the secret was to come from, for messages ("token_file ~/x", "CLAWGATE_...").
    secret_source: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """`<channel>/<account>`, as status and logs name the account."""
        return f"{self.channel}/{self.account_id}"

    def secrets(self) -> tuple[str, ...]:
        """Return every credential of the account: `secret` and the `SecretText` options."""
        extra = (value for value in self.options.values() if isinstance(value, SecretText))
        return tuple(value for value in (self.secret, *extra) if value)


class AccountLink(Protocol):
    """What the channel layer gives one running account."""

    @property
    def media_dir(self) -> Path:
        """A private folder under the home where inbound media is downloaded."""

    def connected(self) -> None:
        """Say the account is connected (state `connected`, clears the last error)."""

    def progress(self) -> None:
        """Say the account is alive; the supervisor restarts it when this stops."""

    def error(self, reason: str) -> None:
        """Report a failure the adapter recovered from itself (counted, shown in status)."""

    async def deliver(self, message: InboundMessage) -> None:
        """Hand over one inbound message; returns once it is persisted or refused."""

    def may_join(self, inviter: str, room_id: str, direct: bool) -> bool:
        """Whether to accept an invite into a room (platforms with invites, like Matrix)."""

    async def delivery_failed(self, message_id: str, reason: str) -> None:
        """Record that a message already sent was not delivered (a late failure report).

        The delivery recorded with platform id `message_id` is marked failed with `reason`,
        which `channels.status` shows as the last error.
        """

    async def load_cursor(self) -> str | None:
        """Return the account's persisted cursor (update offset, sync token), if any."""

    async def save_cursor(self, cursor: str) -> None:
        """Persist the account's cursor (after the messages before it were delivered)."""

    def add_webhook(self, handler: WebhookHandler, *, name: str | None = None) -> str:
        """Serve `handler` on the gateway's HTTP port; return its path after `/channels/`.

        Without `name` the path is a fresh secret (`<channel>/<random>`), for platforms told
        the URL at every start (Telegram's `setWebhook`). With one it is `<channel>/<name>`,
        the same at every start, for platforms configured with one URL by hand (WhatsApp
        Cloud, BlueBubbles, Slack's Events API): the handler must then authenticate every
        request itself (signature, password). Raises `ChannelError` if the path is taken.
        """

    def remove_webhook(self, path: str) -> None:
        """Stop serving a webhook path."""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One HTTP request to an account's webhook path (GET or POST)."""

    method: str
    # Header names in lower case.
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """What to answer a webhook request with.

    An empty `text` answers `ok` for a 2xx status and `refused` otherwise; a 401 counts as a
    failed guess against the gateway's lockout, like a wrong token.
    """

    status: int = 200
    text: str = ""
    content_type: str = "text/plain"


#: Serves one webhook request of one account.
WebhookHandler = Callable[[WebhookRequest], Awaitable[WebhookReply]]


class ChannelAdapter(Protocol):
    """One account of one platform: lifecycle, inbound, outbound (see the module docstring)."""

    capabilities: Capabilities

    async def run(self) -> None:
        """Connect and receive until cancelled; raise `AuthFailed` or any error to stop."""

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk of text; return the platform message id."""

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Send one file (only with `capabilities.media`); return the message id."""

    async def typing(self, target: Target) -> None:
        """Show the typing indicator (only with `capabilities.typing`)."""

    async def logout(self) -> None:
        """Drop what the platform session holds (webhook, session token); best effort."""

    async def close(self) -> None:
        """Release the adapter's resources (HTTP sessions) after its last `run`."""


@runtime_checkable
class EditsText(Protocol):
    """An adapter that can replace the text of a message it posted (see the module docstring).

    Checked with `isinstance` next to `capabilities.edits`; not part of `ChannelAdapter`, so
    a platform without edits implements nothing for it.
    """

    async def edit_text(self, target: Target, message_id: str, text: str) -> None:
        """Replace the text of message `message_id` (as `send_text` returned it) with `text`."""


@runtime_checkable
class Reacts(Protocol):
    """An adapter that can add an emoji reaction to a message (see the module docstring)."""

    async def react(self, target: Target, message_id: str, name: str) -> None:
        """Add the emoji `name` to message `message_id` (an `InboundMessage.message_id`)."""
