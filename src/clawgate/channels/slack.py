"""Slack through Socket Mode or the Events API, with slack-sdk's own clients.

The bot token (`xoxb-`) makes Web API calls. Events arrive one of two ways (`mode`):

- Socket Mode (`socket`, the default; no public URL needed): the app-level token (`xapp-`)
  opens the connection (`apps.connections.open`, then a WebSocket). slack-sdk's aiohttp
  `SocketModeClient` keeps the socket (ping/pong, a new URL on `disconnect`
  `refresh_requested` or a dropped socket); each `events_api` envelope is acked only after
  `link.deliver` returned, so an envelope the gateway did not persist is redelivered by
  Slack (and deduplicated by `<channel>:<ts>`).
- Events API (`events`): Slack POSTs each `event_callback` to the account's named webhook,
  `/channels/slack/<account>` on the gateway's port (behind the public URL given to Slack
  as the Request URL). slack-sdk's `SignatureVerifier` checks every request's
  `X-Slack-Signature` (v0 HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret,
  compared in constant time) and refuses a timestamp more than 5 minutes off: 401, nothing
  done. `url_verification` is answered with its `challenge`; an event is answered 200 only
  after `link.deliver` returned, so Slack retries (`X-Slack-Retry-Num`) what the gateway did
  not persist, and dedupe makes a retry of a persisted one harmless.

Both modes hand the `event_callback` to the same `_on_event_callback`.

- `auth.test` at start names the bot user, whose `<@U...>` mention gates channel messages.
  Refused tokens (`invalid_auth`, `not_authed`, `token_revoked`, `account_inactive`, a bot
  token where the app token belongs) fail the account without a retry storm.
- DMs (`channel_type` `im`), channels and private channels (`channel`, `group`, `mpim`,
  mention-gated). In a channel each top-level message starts a thread: the reply goes
  under it (`thread_ts`) and the thread is one session; a DM thread is one too.
- `message` events with a subtype (edits, joins, bot messages) and the bot's own messages are
  skipped; `app_mention` events are read like messages and fall to the same dedupe id.
- Files go up through `files.uploadV2`'s flow (`files.getUploadURLExternal`, the upload,
  `files.completeUploadExternal`) into the chat and thread; an URL is posted as a link.
- Text is sent as plain `mrkdwn` in chunks of 4,000 characters (Slack's advised limit; it
  truncates at 40,000). A 429 raises `RateLimited` with its `Retry-After`.

slack-sdk logs request bodies and every received frame at DEBUG (message text, tokens in
form bodies): its loggers are held at WARNING.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    ChatKind,
    ChatRef,
    InboundMessage,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Sender,
    Target,
    WebhookReply,
    WebhookRequest,
)

__all__ = ["MAX_TEXT", "SlackAdapter", "normalize"]

logger = logging.getLogger(__name__)
logging.getLogger("slack_sdk").setLevel(logging.WARNING)

T = TypeVar("T")

#: Slack advises at most 4,000 characters a message (`chat.postMessage` truncates at 40,000).
MAX_TEXT: Final = 4000
#: How often the connection is checked; each healthy check is a sign of life.
WATCH_INTERVAL_S: Final = 5.0
#: In events mode nothing is connected: `auth.test` this often is the sign of life (and
#: notices a revoked token).
EVENTS_CHECK_INTERVAL_S: Final = 60.0
# Concurrent Web API requests per account (replies to different chats go out side by side).
POOL_SIZE: Final = 32
_BOT_TOKEN: Final = re.compile(r"^xoxb-[A-Za-z0-9-]+$")
_APP_TOKEN: Final = re.compile(r"^xapp-[A-Za-z0-9-]+$")
_AUTH_ERRORS: Final = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "not_allowed_token_type",
        "missing_scope",
    }
)
_PERMANENT_ERRORS: Final = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "cannot_reply_to_message",
        "message_not_found",
        "already_reacted",
        "invalid_name",
    }
)
_CHANNEL_TYPES: Final = {"im": ChatKind.DM, "channel": ChatKind.GROUP, "group": ChatKind.GROUP}


def normalize(
    event: dict[str, Any], bot_user: str, account: AccountConfig
) -> InboundMessage | None:
    """Return the channel layer's view of an Events API `event`, or None to skip it.

    Handled: `message` events without a subtype (DMs, channels, private channels, group
    DMs) and `app_mention`; the bot's own and other bots' messages are skipped.
    """
    kind = event.get("type")
    if kind not in ("message", "app_mention") or event.get("subtype") or event.get("bot_id"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    text = event.get("text")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)):
        return None
    if user == bot_user or not isinstance(text, str) or not text.strip():
        return None
    channel_type = event.get("channel_type")
    if channel_type is None:  # app_mention carries none; D... ids are DMs
        channel_type = "im" if channel.startswith("D") else "channel"
    chat_kind = _CHANNEL_TYPES.get(channel_type, ChatKind.GROUP)
    thread_ts = event.get("thread_ts")
    thread = thread_ts if isinstance(thread_ts, str) else None
    if chat_kind is ChatKind.GROUP and thread is None:
        thread = ts  # a top-level channel message starts the thread the reply goes into
    mention = f"<@{bot_user}>"
    try:
        received_at = int(float(ts) * 1000)
    except ValueError:
        return None
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=f"{channel}:{ts}",
        sender=Sender(user),
        chat=ChatRef(channel, chat_kind),
        text=text.replace(mention, "").strip() if chat_kind is ChatKind.GROUP else text,
        received_at=received_at,
        thread_id=thread,
        mentioned=chat_kind is ChatKind.DM or kind == "app_mention" or mention in text,
        command=text.startswith("/"),
    )


class SlackAdapter:
    """One Slack app (bot token + app-level token) in Socket Mode."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        bot_token = account.secret or ""
        if not _BOT_TOKEN.fullmatch(bot_token):
            raise AuthFailed(
                f"the {account.key} bot token is malformed ({account.secret_source});"
                " it starts with xoxb- (OAuth & Permissions > Bot User OAuth Token)"
            )
        self._mode = str(account.options.get("mode") or "socket")
        app_token = str(account.options.get("app_token") or "")
        signing_secret = str(account.options.get("signing_secret") or "")
        self._verifier: SignatureVerifier | None = None
        if self._mode == "events":
            if not signing_secret.strip():
                raise AuthFailed(
                    f'{account.key}: mode = "events" needs the signing secret'
                    f" ({account.options.get('signing_secret_source', '')}); copy it from"
                    " Basic Information > App Credentials > Signing Secret"
                )
            self._verifier = SignatureVerifier(signing_secret)
        elif not _APP_TOKEN.fullmatch(app_token):
            raise AuthFailed(
                f"the {account.key} app-level token is malformed or missing"
                f" ({account.options.get('app_token_source', '')}); it starts with xapp-"
                " (Basic Information > App-Level Tokens, scope connections:write)"
            )
        self._account = account
        self._link = link
        self._bot_token = bot_token
        self._app_token = app_token
        self._api_base: str = account.options["api_base"]
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            threads=True,
            media=True,
            reactions=True,
            edits=True,
            max_text=MAX_TEXT,
            stall_after_s=(
                3 * EVENTS_CHECK_INTERVAL_S if self._mode == "events" else 6 * WATCH_INTERVAL_S
            ),
        )
        self._web: AsyncWebClient | None = None
        self._bot_user = ""
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _client(self) -> AsyncWebClient:
        # One pooled session: without it slack-sdk opens a new session for every call.
        if self._web is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL_SIZE))
            self._web = AsyncWebClient(
                token=self._bot_token, base_url=self._api_base, session=session
            )
        return self._web

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Receive until cancelled: over Socket Mode or the Events API webhook."""
        web = self._client()
        auth = await self._call(web.auth_test())
        self._bot_user = str(auth.get("user_id") or "")
        if self._mode == "events":
            await self._run_events(web)
        else:
            await self._run_socket(web)

    async def _run_socket(self, web: AsyncWebClient) -> None:
        """Connect over Socket Mode and receive until cancelled."""
        # The first URL is asked for here, so a refused app token fails the account once
        # instead of slack-sdk retrying it every few seconds.
        opened = await self._call(web.apps_connections_open(app_token=self._app_token))
        socket = SocketModeClient(
            app_token=self._app_token,
            web_client=web,
            logger=logging.getLogger("slack_sdk.socket_mode"),
        )
        socket.socket_mode_request_listeners.append(self._on_request)
        try:
            socket.wss_uri = str(opened["url"])
            await socket.connect()  # type: ignore[no-untyped-call]
            self._link.connected()
            down_since: float | None = None
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(WATCH_INTERVAL_S / 5)
                if await socket.is_connected():
                    down_since = None
                    self._link.progress()
                elif down_since is None:
                    down_since = loop.time()
                elif loop.time() - down_since > 4 * WATCH_INTERVAL_S:
                    raise ChannelError("the Socket Mode connection stayed down; reconnecting")
        finally:
            await socket.close()  # type: ignore[no-untyped-call]

    async def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        """Hand an `events_api` envelope's event over, then ack it."""
        if request.type == "events_api":
            await self._on_event_callback(request.payload)
        # Acked once persisted (or skipped); an unacked envelope comes back and is deduped.
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))
        self._link.progress()

    async def _run_events(self, web: AsyncWebClient) -> None:
        """Serve the Events API webhook until cancelled; `auth.test` is the sign of life."""
        path = self._link.add_webhook(self._on_webhook, name=self._account.account_id)
        self._log.info("Events API requests are served at /channels/%s", path)
        try:
            self._link.connected()
            while True:
                await asyncio.sleep(EVENTS_CHECK_INTERVAL_S)
                try:
                    await self._call(web.auth_test())
                except AuthFailed:
                    raise
                except ChannelError as exc:
                    # The webhook keeps serving: the stall timer restarts the account if
                    # Slack stays unreachable and no event arrives either.
                    self._link.error(str(exc))
                    continue
                self._link.progress()
        finally:
            self._link.remove_webhook(path)

    async def _on_webhook(self, request: WebhookRequest) -> WebhookReply:
        """Verify one Events API request, then answer it (after delivering its event)."""
        if request.method != "POST":
            return WebhookReply(405)
        assert self._verifier is not None
        try:
            # compare_digest raises TypeError on a non-ASCII signature: refused up front.
            valid = request.headers.get("x-slack-signature", "").isascii() and (
                self._verifier.is_valid_request(request.body, request.headers)
            )
        except (ValueError, UnicodeDecodeError):  # a timestamp or body that is not text
            valid = False
        if not valid:
            return WebhookReply(401)
        try:
            payload = json.loads(request.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._link.error("the Events API webhook received an unreadable request")
            return WebhookReply(400)
        kind = payload.get("type")
        if kind == "url_verification":
            return WebhookReply(text=str(payload.get("challenge") or ""))
        if kind == "event_callback":
            await self._on_event_callback(payload)
        self._link.progress()
        return WebhookReply()

    async def _on_event_callback(self, payload: dict[str, Any]) -> None:
        """Hand an `event_callback`'s message to the layer (both modes come through here)."""
        event = payload.get("event")
        message = (
            normalize(event, self._bot_user, self._account) if isinstance(event, dict) else None
        )
        if message is not None:
            await self._link.deliver(message)
        else:
            self._log.debug("event %s skipped (not a user message)", payload.get("event_id"))

    # -- sending --------------------------------------------------------------------

    @staticmethod
    def _thread(target: Target) -> str | None:
        """The `thread_ts` to post under: the target's thread, else the message replied to."""
        if target.thread_id:
            return target.thread_id
        if target.reply_to and not target.chat_id.startswith("D"):
            return target.reply_to.rsplit(":", 1)[-1]
        return None

    async def send_text(self, target: Target, text: str) -> str:
        """Post one chunk (into the target's thread); return its `ts`."""
        response = await self._call(
            self._client().chat_postMessage(
                channel=target.chat_id, text=text, thread_ts=self._thread(target)
            )
        )
        return str(response["ts"])

    async def edit_text(self, target: Target, message_id: str, text: str) -> None:
        """Replace the text of a message the bot posted (`chat.update`)."""
        await self._call(
            self._client().chat_update(channel=target.chat_id, ts=message_id, text=text)
        )

    async def react(self, target: Target, message_id: str, name: str) -> None:
        """Add the emoji `name` (without colons) to a message (`reactions.add`)."""
        ts = message_id.rsplit(":", 1)[-1]
        await self._call(
            self._client().reactions_add(channel=target.chat_id, timestamp=ts, name=name)
        )

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Upload a local file into the chat (and thread); return the file id.

        Slack cannot fetch a file from an URL itself, so an URL is posted as a link (Slack
        unfurls it) and the message's `ts` is returned.
        """
        thread = self._thread(target)
        if media.source.startswith(("http://", "https://")):
            text = f"{media.caption}\n{media.source}" if media.caption else media.source
            response = await self._call(
                self._client().chat_postMessage(channel=target.chat_id, text=text, thread_ts=thread)
            )
            return str(response["ts"])
        path = Path(media.source)
        response = await self._call(
            self._client().files_upload_v2(
                file=str(path),
                filename=path.name,
                channel=target.chat_id,
                thread_ts=thread,
                initial_comment=media.caption or None,
            )
        )
        return str(response["file"]["id"])

    async def typing(self, target: Target) -> None:
        """Bots have no typing indicator in Slack's Events API; nothing to do."""

    async def logout(self) -> None:
        """Nothing is registered with Slack; Socket Mode sessions end with the socket.

        In events mode the Request URL stays set in the app's settings: Slack's calls to it
        fail once the gateway no longer serves it, and Slack disables the subscription.
        """

    async def close(self) -> None:
        """Close the Web API session."""
        web, self._web = self._web, None
        if web is not None and web.session is not None and not web.session.closed:
            await web.session.close()

    # -- errors ---------------------------------------------------------------------

    async def _call(self, request: Awaitable[T]) -> T:
        """Await a Web API call, mapping its errors to the channel layer's."""
        try:
            return await request
        except SlackApiError as exc:
            response = exc.response
            data = response.data if isinstance(response.data, dict) else {}
            code = str(data.get("error") or f"HTTP {response.status_code}")
            if response.status_code == 429 or code == "ratelimited":
                wait = _retry_after(response.headers)
                raise RateLimited(f"Slack asked to wait {wait:g} s", wait) from None
            if code in _AUTH_ERRORS:
                raise AuthFailed(
                    f"Slack refused the {self._account.key} tokens ({code}); check the bot"
                    " (xoxb-) and app-level (xapp-) tokens of the app"
                ) from None
            if code in _PERMANENT_ERRORS:
                raise PermanentSendError(f"Slack refused the request: {code}") from None
            raise ChannelError(f"Slack error: {code}") from None
        except SlackClientError as exc:
            raise ChannelError(f"Slack client error: {type(exc).__name__}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(f"network error talking to Slack: {type(exc).__name__}") from None


def _retry_after(headers: Any) -> float:
    for name in ("Retry-After", "retry-after"):
        value = headers.get(name) if headers is not None else None
        if value is not None:
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                break
    return 1.0
