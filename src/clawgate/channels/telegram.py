"""Telegram through the Bot API, with python-telegram-bot as the client and its models.

Only PTB's `Bot` (its HTTP requests and Telegram objects) is used, not its `Application`:
the update loop is ours, so the offset is persisted only after each update was handed to
the channel layer, and every API error maps to what the layer expects.

- Polling (`mode = "polling"`, the default): `deleteWebhook`, then `getUpdates` long polls
  from the persisted offset; each answered poll is a sign of life. Updates are parsed one
  by one, so an update this version cannot read is skipped (its id still confirmed) instead
  of blocking the ones after it. Transient failures (network, 5xx, an unreadable answer)
  are retried in place with a short backoff; after a few in a row the account is rebuilt
  by the supervisor. 401 fails the account (no retry storm); 409 (another poller, or a
  webhook) restarts it with backoff.
- Webhook (`mode = "webhook"`): the gateway serves a random secret path under `/channels/`
  on its HTTP port, `setWebhook` registers `<webhook_url>/channels/<path>` with a random
  secret token, and requests without that `X-Telegram-Bot-Api-Secret-Token` get 401. A
  200 is answered only after the update was persisted (Telegram redelivers otherwise).
  `getWebhookInfo` every few seconds is the progress signal.
- DMs (`private` chats) and groups (mention gating: an `@botname` mention, a
  `/command@botname`, or a reply to the bot), forum topics (`:topic:<id>` sessions),
  replies, the typing action, 4096-character chunks, photos and documents both ways
  (inbound files are downloaded under `<home>/media/telegram/<account>/`).

PTB's requests go through `AiohttpRequest` (`telegram_request.py`: aiohttp, the gateway's
HTTP stack) rather than its default httpx backend, which measured several times slower
here. httpx, imported by PTB anyway, logs request URLs at INFO, and a Bot API URL holds the
token: its loggers are held at WARNING. Reading updates, which needs no I/O, is in
`telegram_protocol.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import warnings
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final, TypeVar

from telegram import Bot, Message, ReplyParameters, Update, User
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    Media,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Target,
    WebhookReply,
    WebhookRequest,
)
from .telegram_protocol import chat_id, normalize, seconds
from .telegram_request import AiohttpRequest

__all__ = ["MAX_TEXT", "SECRET_HEADER", "TelegramAdapter"]

logger = logging.getLogger(__name__)
for _noisy in ("httpx", "httpcore"):  # request lines carry /bot<token>/ in the URL
    logging.getLogger(_noisy).setLevel(logging.WARNING)
# getUpdates goes through `do_api_request` on purpose: raw JSON lets one unreadable update be
# skipped instead of failing its whole batch (see `_poll`).
warnings.filterwarnings("ignore", message=".*do_api_request.*getUpdates", category=PTBUserWarning)
# RetryAfter warns about its own future type as it is built; `seconds` reads both types.
warnings.filterwarnings("ignore", message=".*retry_after.*", category=PTBDeprecationWarning)

T = TypeVar("T")

MAX_TEXT: Final = 4096
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
# Bot API downloads stop at 20 MB; bigger files are named in the text instead.
MAX_DOWNLOAD: Final = 20 * 1024 * 1024
# Consecutive failed polls retried in place before the supervisor rebuilds the account.
POLL_RETRIES: Final = 5
ALLOWED_UPDATES: Final = ["message"]
_TOKEN: Final = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")


class TelegramAdapter:
    """One Telegram bot account."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        token = account.secret or ""
        if not _TOKEN.fullmatch(token):
            raise AuthFailed(
                f"the {account.key} bot token is malformed ({account.secret_source});"
                " it looks like 123456789:AA... as @BotFather gives it"
            )
        self._account = account
        self._link = link
        self._token = token
        options = account.options
        self._api_base: str = options["api_base"]
        self._mode: str = options["mode"]
        self._webhook_url: str | None = options.get("webhook_url")
        self._poll_timeout: int = options["poll_timeout_s"]
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            threads=True,
            media=True,
            edits=True,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=2 * self._poll_timeout + 10,
        )
        self._sender: Bot | None = None
        self._me: User | None = None
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _bot(self) -> Bot:
        request = AiohttpRequest()
        return Bot(
            self._token,
            base_url=f"{self._api_base}/bot",
            base_file_url=f"{self._api_base}/file/bot",
            request=request,
        )

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Receive until cancelled: long polling or a webhook."""
        if self._mode == "webhook" and not self._webhook_url:
            raise AuthFailed(
                f'{self._account.key}: mode = "webhook" needs webhook_url, the public https'
                " URL of this gateway's HTTP port"
            )
        bot = self._bot()
        try:
            self._me = await self._call(bot.get_me())
            if self._mode == "webhook":
                await self._run_webhook(bot)
            else:
                await self._run_polling(bot)
        finally:
            await bot.shutdown()

    async def _run_polling(self, bot: Bot) -> None:
        await self._call(bot.delete_webhook(drop_pending_updates=False))
        cursor = await self._link.load_cursor()
        offset = int(cursor) if cursor else None
        self._link.connected()
        failures = 0
        while True:
            try:
                updates = await self._poll(bot, offset)
            except RateLimited as exc:
                self._link.progress()
                await asyncio.sleep(exc.retry_after_s)
                continue
            except (AuthFailed, asyncio.CancelledError):
                raise
            except ChannelError as exc:
                failures += 1
                self._link.error(str(exc))
                if failures >= POLL_RETRIES or "409" in str(exc):
                    raise
                await asyncio.sleep(min(0.5 * 2 ** (failures - 1), 8.0))
                continue
            failures = 0
            self._link.progress()
            # Handed over together, so their dedupe records share one commit; the offset
            # moves on only once every one of them is persisted.
            await asyncio.gather(*(self._receive(bot, u) for _, u in updates if u is not None))
            if updates:
                offset = updates[-1][0] + 1
                await self._link.save_cursor(str(offset))

    async def _poll(self, bot: Bot, offset: int | None) -> list[tuple[int, Update | None]]:
        """Long-poll once; return (update_id, update or None when unreadable) pairs.

        Updates are parsed one by one: one this version cannot read is skipped and
        counted, and its id still moves the offset on.
        """
        query: dict[str, Any] = {"timeout": self._poll_timeout, "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            query["offset"] = offset
        raw = await self._call(
            bot.do_api_request("getUpdates", api_kwargs=query, read_timeout=self._poll_timeout + 5)
        )
        if not isinstance(raw, list):
            raise ChannelError("Telegram answered something that is not a Bot API reply")
        updates: list[tuple[int, Update | None]] = []
        for item in raw:
            update_id = item.get("update_id") if isinstance(item, dict) else None
            if not isinstance(update_id, int):
                self._link.error("an update without an update_id was skipped")
                continue
            try:
                updates.append((update_id, Update.de_json(item, bot)))
            except Exception:
                self._link.error(f"update {update_id} could not be read; skipped")
                updates.append((update_id, None))
        return updates

    async def _receive(self, bot: Bot, update: Update) -> None:
        """Normalize one update (downloading its files) and hand it to the layer."""
        me = self._me
        assert me is not None
        media = await self._download(update.message) if update.message is not None else ()
        message = normalize(update, me, self._account, media)
        if message is None:
            self._log.debug("update %s skipped (not a user message)", update.update_id)
            return
        await self._link.deliver(message)

    async def _run_webhook(self, bot: Bot) -> None:
        secret = secrets.token_urlsafe(32)

        async def on_update(request: WebhookRequest) -> WebhookReply:
            if request.method != "POST":
                return WebhookReply(405)
            given = request.headers.get(SECRET_HEADER.lower(), "")
            # Undecodable header bytes arrive surrogate-escaped; encode them back, or raise.
            if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode()):
                return WebhookReply(401)
            try:
                update = Update.de_json(json.loads(request.body), bot)
            except Exception:
                self._link.error("the webhook received an unreadable update")
                return WebhookReply(400)
            self._link.progress()
            await self._receive(bot, update)
            return WebhookReply()

        path = self._link.add_webhook(on_update)
        try:
            assert self._webhook_url is not None
            url = f"{self._webhook_url.rstrip('/')}/channels/{path}"
            await self._call(
                bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
            )
            self._link.connected()
            while True:
                await asyncio.sleep(self.capabilities.stall_after_s / 4)
                await self._call(bot.get_webhook_info())
                self._link.progress()
        finally:
            self._link.remove_webhook(path)

    async def _download(self, message: Message) -> tuple[Media, ...]:
        """Download a message's photo or document into the media folder."""
        if message.photo:
            photo = message.photo[-1]  # the largest size
            file_id, unique, size = photo.file_id, photo.file_unique_id, photo.file_size
            mime, kind, suffix = "image/jpeg", "photo", ".jpg"
        elif message.document is not None:
            doc = message.document
            file_id, unique, size = doc.file_id, doc.file_unique_id, doc.file_size
            mime, kind = doc.mime_type or "application/octet-stream", "document"
            suffix = Path(doc.file_name or "").suffix
        else:
            return ()
        if size is not None and size > MAX_DOWNLOAD:
            self._link.error(f"a {size}-byte file was too large to download")
            return ()
        path = self._link.media_dir / f"{message.chat.id}_{message.message_id}_{unique}{suffix}"
        try:
            file = await self._call(self._sending_bot().get_file(file_id))
            await file.download_to_drive(path, read_timeout=60)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._link.error(f"a {kind} could not be downloaded: {type(exc).__name__}")
            return ()
        path.chmod(0o600)
        return (Media(str(path), mime, path.stat().st_size, kind),)  # type: ignore[arg-type]

    # -- sending --------------------------------------------------------------------

    def _sending_bot(self) -> Bot:
        if self._sender is None:
            self._sender = self._bot()
        return self._sender

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk of plain text (no parse mode: nothing is read as markup)."""
        message = await self._call(
            self._sending_bot().send_message(
                chat_id=chat_id(target.chat_id),
                text=text,
                message_thread_id=int(target.thread_id) if target.thread_id else None,
                reply_parameters=self._reply(target),
            )
        )
        return str(message.message_id)

    async def edit_text(self, target: Target, message_id: str, text: str) -> None:
        """Replace the text of a message the bot sent (`editMessageText`)."""
        try:
            await self._call(
                self._sending_bot().edit_message_text(
                    text, chat_id=chat_id(target.chat_id), message_id=int(message_id)
                )
            )
        except PermanentSendError as exc:
            if "message is not modified" not in str(exc).lower():  # the same text: done
                raise

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Send a photo or document from a local path or an URL."""
        source: Any = media.source
        if not source.startswith(("http://", "https://")):
            source = Path(source)
        bot = self._sending_bot()
        common: dict[str, Any] = {
            "chat_id": chat_id(target.chat_id),
            "caption": media.caption or None,
            "message_thread_id": int(target.thread_id) if target.thread_id else None,
            "reply_parameters": self._reply(target),
        }
        if media.kind == "photo":
            message = await self._call(bot.send_photo(photo=source, **common))
        else:
            message = await self._call(bot.send_document(document=source, **common))
        return str(message.message_id)

    async def typing(self, target: Target) -> None:
        """Show "typing..." in the chat (and topic)."""
        await self._call(
            self._sending_bot().send_chat_action(
                chat_id=chat_id(target.chat_id),
                action="typing",
                message_thread_id=int(target.thread_id) if target.thread_id else None,
            )
        )

    @staticmethod
    def _reply(target: Target) -> ReplyParameters | None:
        # Inbound ids are "<chat>:<message>" (unique per bot); `send` may pass the bare id.
        message_id = (target.reply_to or "").rsplit(":", 1)[-1]
        if not message_id.isdigit():
            return None
        return ReplyParameters(message_id=int(message_id), allow_sending_without_reply=True)

    async def logout(self) -> None:
        """Remove the webhook, so Telegram stops calling a gateway that no longer listens."""
        await self._call(self._sending_bot().delete_webhook(drop_pending_updates=False))

    async def close(self) -> None:
        """Close the sending session."""
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.shutdown()

    # -- errors ---------------------------------------------------------------------

    async def _call(self, request: Awaitable[T]) -> T:
        """Await a Bot API call, mapping its errors to the channel layer's."""
        try:
            return await request
        except RetryAfter as exc:
            wait = seconds(exc.retry_after)
            raise RateLimited(f"Telegram asked to wait {wait:g} s", wait) from None
        except InvalidToken:
            raise AuthFailed(
                f"Telegram refused the {self._account.key} bot token (401 Unauthorized);"
                " check it with @BotFather and run `clawgate channels login telegram`"
            ) from None
        except Conflict as exc:
            raise ChannelError(
                f"409 Conflict: another poller or a webhook uses this bot token ({exc.message})"
            ) from None
        except (BadRequest, Forbidden) as exc:
            raise PermanentSendError(f"Telegram refused the request: {exc.message}") from None
        except NetworkError as exc:
            raise ChannelError(f"network error talking to Telegram: {exc.message}") from None
        except TelegramError as exc:
            raise ChannelError(f"Telegram error: {exc.message}") from None
