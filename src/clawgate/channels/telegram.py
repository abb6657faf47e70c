"""Telegram through the Bot API, with aiogram 3 as the HTTP client and typed models.

Only aiogram's `Bot` (its aiohttp session and pydantic models) is used, not its
dispatcher: the update loop is ours, so the offset is persisted only after each update
was handed to the channel layer, and every API error maps to what the layer expects.

- Polling (`mode = "polling"`, the default): `deleteWebhook`, then `getUpdates` long polls
  from the persisted offset; each answered poll is a sign of life. Transient failures
  (network, 5xx, an unreadable answer) are retried in place with a short backoff; after
  a few in a row the account is rebuilt by the supervisor. 401 fails the account (no
  retry storm); 409 (another poller, or a webhook) restarts it with backoff.
- Webhook (`mode = "webhook"`): the gateway serves a random secret path under `/hooks/`
  on its HTTP port, `setWebhook` registers `<webhook_url>/hooks/<path>` with a random
  secret token, and requests without that `X-Telegram-Bot-Api-Secret-Token` get 401. A
  200 is answered only after the update was persisted (Telegram redelivers otherwise).
  `getWebhookInfo` every few seconds is the progress signal.
- DMs (`private` chats) and groups (mention gating: an `@botname` mention, a
  `/command@botname`, or a reply to the bot), forum topics (`:topic:<id>` sessions),
  replies, the typing action, 4096-character chunks, photos and documents both ways
  (inbound files are downloaded under `<home>/media/telegram/<account>/`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final, TypeVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import FSInputFile, Message, ReplyParameters, Update, User
from aiogram.utils.token import TokenValidationError, validate_token
from pydantic import ValidationError

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    ChatKind,
    ChatRef,
    InboundMessage,
    Media,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Sender,
    Target,
)

__all__ = ["MAX_TEXT", "SECRET_HEADER", "TelegramAdapter", "normalize"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TEXT: Final = 4096
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
# Bot API downloads stop at 20 MB; bigger files are named in the text instead.
MAX_DOWNLOAD: Final = 20 * 1024 * 1024
# Consecutive failed polls retried in place before the supervisor rebuilds the account.
POLL_RETRIES: Final = 5
ALLOWED_UPDATES: Final = ["message"]


class _Unreadable(ChannelError):
    """A Bot API answer that is not JSON, or holds something aiogram's models refuse."""


def _chat_id(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _mentions_me(message: Message, me: User) -> bool:
    """Whether a group message addresses the bot: @mention, /cmd@bot, text_mention, reply."""
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == me.id:
        return True
    text = message.text or message.caption or ""
    username = (me.username or "").lower()
    for entity in message.entities or message.caption_entities or []:
        if entity.type == "text_mention" and entity.user is not None:
            if entity.user.id == me.id:
                return True
            continue
        fragment = text[entity.offset : entity.offset + entity.length].lower()
        if entity.type == "mention" and username and fragment == f"@{username}":
            return True
        if entity.type == "bot_command" and username and fragment.endswith(f"@{username}"):
            return True
    return False


def normalize(
    update: Update, me: User, account: AccountConfig, media: tuple[Media, ...] = ()
) -> InboundMessage | None:
    """Return the channel layer's view of an update, or None for what it does not handle.

    Handled: `message` updates from users in private chats, groups and supergroups.
    Anything else (edits, channel posts, member changes, unknown kinds) is skipped.
    """
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    chat = message.chat
    if chat.type == "private":
        kind = ChatKind.DM
    elif chat.type in ("group", "supergroup"):
        kind = ChatKind.GROUP
    else:
        return None
    text = message.text or message.caption or ""
    if not text.strip() and not media:
        return None
    user = message.from_user
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or user.username or ""
    topic = message.message_thread_id if message.is_topic_message else None
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=f"{chat.id}:{message.message_id}",
        sender=Sender(str(user.id), name),
        chat=ChatRef(str(chat.id), kind, chat.title or ""),
        text=text,
        received_at=int(message.date.timestamp() * 1000),
        thread_id=str(topic) if topic is not None else None,
        thread_kind="topic",
        media=media,
        reply_to=(
            str(message.reply_to_message.message_id)
            if message.reply_to_message is not None
            else None
        ),
        mentioned=kind is ChatKind.DM or _mentions_me(message, me),
        command=text.startswith("/"),
    )


class TelegramAdapter:
    """One Telegram bot account."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        token = account.secret or ""
        try:
            validate_token(token)
        except TokenValidationError:
            raise AuthFailed(
                f"the {account.key} bot token is malformed ({account.secret_source});"
                " it looks like 123456789:AA... as @BotFather gives it"
            ) from None
        self._account = account
        self._link = link
        self._token = token
        options = account.options
        self._api = TelegramAPIServer.from_base(options["api_base"])
        self._mode: str = options["mode"]
        self._webhook_url: str | None = options.get("webhook_url")
        self._poll_timeout: int = options["poll_timeout_s"]
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            threads=True,
            media=True,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=2 * self._poll_timeout + 10,
        )
        self._sender: Bot | None = None
        self._me: User | None = None
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _bot(self) -> Bot:
        return Bot(self._token, session=AiohttpSession(api=self._api))

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
            await bot.session.close()

    async def _run_polling(self, bot: Bot) -> None:
        await self._call(bot.delete_webhook(drop_pending_updates=False))
        cursor = await self._link.load_cursor()
        offset = int(cursor) if cursor else None
        self._link.connected()
        failures = 0
        while True:
            try:
                updates = await self._call(
                    bot.get_updates(
                        offset=offset,
                        timeout=self._poll_timeout,
                        allowed_updates=ALLOWED_UPDATES,
                        request_timeout=self._poll_timeout + 5,
                    )
                )
            except RateLimited as exc:
                self._link.progress()
                await asyncio.sleep(exc.retry_after_s)
                continue
            except (AuthFailed, asyncio.CancelledError):
                raise
            except _Unreadable as exc:
                # One update the models refuse must not block every later one: read the
                # batch as plain JSON and skip what does not parse.
                try:
                    updates = await self._raw_updates(bot, offset)
                except ChannelError:
                    failures += 1
                    self._link.error(str(exc))
                    if failures >= POLL_RETRIES:
                        raise
                    await asyncio.sleep(min(0.5 * 2 ** (failures - 1), 8.0))
                    continue
            except ChannelError as exc:
                failures += 1
                self._link.error(str(exc))
                if failures >= POLL_RETRIES or "409" in str(exc):
                    raise
                await asyncio.sleep(min(0.5 * 2 ** (failures - 1), 8.0))
                continue
            failures = 0
            self._link.progress()
            for update in updates:
                await self._receive(bot, update)
                offset = update.update_id + 1
            if updates:
                await self._link.save_cursor(str(offset))

    async def _raw_updates(self, bot: Bot, offset: int | None) -> list[Update]:
        """Fetch pending updates without waiting, keeping those that parse.

        An update that does not parse is skipped (and counted as an error): its id is
        still passed on, so the next offset confirms it to Telegram.

        Raises:
            ChannelError: the answer is not a Bot API reply at all.
        """
        session = await bot.session.create_session()  # type: ignore[attr-defined]
        url = self._api.api_url(token=self._token, method="getUpdates")
        unreadable = _Unreadable("Telegram answered something that is not a Bot API reply")
        try:
            query = {"timeout": 0} if offset is None else {"offset": offset, "timeout": 0}
            async with session.post(url, json=query) as response:
                body = await response.json(content_type=None)
        except Exception:
            raise unreadable from None
        if not isinstance(body, dict) or not isinstance(body.get("result"), list):
            raise unreadable
        updates = []
        for raw in body["result"]:
            try:
                updates.append(Update.model_validate(raw, context={"bot": bot}))
            except ValidationError:
                update_id = raw.get("update_id") if isinstance(raw, dict) else None
                if not isinstance(update_id, int):
                    continue
                self._link.error(f"update {update_id} could not be read; skipped")
                updates.append(Update(update_id=update_id))
        return updates

    async def _receive(self, bot: Bot, update: Update) -> None:
        """Normalize one update (downloading its files) and hand it to the layer."""
        me = self._me
        assert me is not None
        media = await self._download(bot, update.message) if update.message else ()
        message = normalize(update, me, self._account, media)
        if message is None:
            self._log.debug("update %s skipped (not a user message)", update.update_id)
            return
        await self._link.deliver(message)

    async def _run_webhook(self, bot: Bot) -> None:
        secret = secrets.token_urlsafe(32)

        async def on_update(headers: dict[str, str], body: bytes) -> int:
            given = headers.get(SECRET_HEADER.lower(), "")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return 401
            try:
                update = Update.model_validate_json(body, context={"bot": bot})
            except ValidationError:
                self._link.error("the webhook received an unreadable update")
                return 400
            self._link.progress()
            await self._receive(bot, update)
            return 200

        path = self._link.add_webhook(on_update)
        try:
            assert self._webhook_url is not None
            url = f"{self._webhook_url.rstrip('/')}/hooks/{path}"
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

    async def _download(self, bot: Bot, message: Message) -> tuple[Media, ...]:
        """Download a message's photo or document into the media folder."""
        if message.photo:
            photo = message.photo[-1]  # the largest size
            found = [(photo.file_id, photo.file_unique_id, photo.file_size, "image/jpeg", "photo")]
        elif message.document is not None:
            doc = message.document
            mime = doc.mime_type or "application/octet-stream"
            found = [(doc.file_id, doc.file_unique_id, doc.file_size, mime, "document")]
        else:
            return ()
        media = []
        for file_id, unique, size, mime, kind in found:
            if size is not None and size > MAX_DOWNLOAD:
                self._link.error(f"a {size}-byte file was too large to download")
                continue
            suffix = ".jpg" if kind == "photo" else Path(message.document.file_name or "").suffix  # type: ignore[union-attr]
            path = self._link.media_dir / f"{message.chat.id}_{message.message_id}_{unique}{suffix}"
            try:
                file = await self._call(bot.get_file(file_id))
                if file.file_path is None:
                    raise ChannelError("getFile gave no file_path")
                await bot.download_file(file.file_path, destination=path, timeout=60)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._link.error(f"a {kind} could not be downloaded: {type(exc).__name__}")
                continue
            path.chmod(0o600)
            media.append(Media(str(path), mime, path.stat().st_size, kind))  # type: ignore[arg-type]
        return tuple(media)

    # -- sending --------------------------------------------------------------------

    def _sending_bot(self) -> Bot:
        if self._sender is None:
            self._sender = self._bot()
        return self._sender

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk of plain text (no parse mode: nothing is read as markup)."""
        message = await self._call(
            self._sending_bot().send_message(
                chat_id=_chat_id(target.chat_id),
                text=text,
                message_thread_id=int(target.thread_id) if target.thread_id else None,
                reply_parameters=self._reply(target),
            )
        )
        return str(message.message_id)

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Send a photo or document from a local path or an URL."""
        source: Any = media.source
        if not source.startswith(("http://", "https://")):
            source = FSInputFile(source)
        bot = self._sending_bot()
        common: dict[str, Any] = {
            "chat_id": _chat_id(target.chat_id),
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
                chat_id=_chat_id(target.chat_id),
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
            await sender.session.close()

    # -- errors ---------------------------------------------------------------------

    async def _call(self, request: Awaitable[T]) -> T:
        """Await a Bot API call, mapping its errors to the channel layer's."""
        try:
            return await request
        except TelegramRetryAfter as exc:
            raise RateLimited(
                f"Telegram asked to wait {exc.retry_after} s", exc.retry_after
            ) from None
        except TelegramUnauthorizedError:
            raise AuthFailed(
                f"Telegram refused the {self._account.key} bot token (401 Unauthorized);"
                " check it with @BotFather and run `clawgate channels login telegram`"
            ) from None
        except TelegramConflictError as exc:
            raise ChannelError(
                f"409 Conflict: another poller or a webhook uses this bot token ({exc.message})"
            ) from None
        except (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound) as exc:
            raise PermanentSendError(f"Telegram refused the request: {exc.message}") from None
        except ClientDecodeError:
            raise _Unreadable("Telegram answered something that is not a Bot API reply") from None
        except TelegramNetworkError as exc:
            raise ChannelError(f"network error talking to Telegram: {exc.message}") from None
        except TelegramAPIError as exc:
            raise ChannelError(f"Telegram error: {exc.message}") from None
