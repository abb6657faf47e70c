"""iMessage through a BlueBubbles server (experimental; the server runs on a Mac).

BlueBubbles (https://bluebubbles.app) exposes the Mac's Messages app as a REST API, every
request authenticated by the server password in the query (`?guid=`), and POSTs events to
webhooks registered with it. This adapter speaks that API with aiohttp (no SDK: the
`imessage` extra is empty):

- At start `GET /api/v1/ping` and `GET /api/v1/server/info` (a 401 is a refused password:
  the account fails once with a clear status error and is not retried); whether the
  server's Private API is on decides replies (`selectedMessageGuid`) and typing.
- Inbound: the gateway serves `/channels/imessage/<account>` and registers
  `<webhook_url>/channels/imessage/<account>?token=<random>` with the server
  (`POST /api/v1/webhook`, events `new-message`, `updated-message`, `message-send-error`),
  deleting the registrations of earlier
  starts first. BlueBubbles does not sign webhooks, so the token is the authentication: a
  fresh 256-bit secret each start, compared in constant time; a request without it gets 401
  and does nothing. No secret has to be configured, and a leaked URL dies at the next start.
- BlueBubbles POSTs each event once and never retries, so a message sent while the gateway
  was down or the webhook unreachable would be lost: on every (re)start the adapter asks
  `POST /api/v1/message/query` for the messages since its cursor (the newest `dateCreated`
  delivered, persisted with `link.save_cursor`) and delivers them; the layer's dedupe (by
  message guid) drops those the webhook already brought.
- `new-message` events from others (`isFromMe` skipped, tapbacks skipped) become
  `InboundMessage`s: a chat guid `iMessage;-;<address>` is a DM, `iMessage;+;chat...` a
  group. iMessage has no bot mentions: in groups the bot counts as mentioned when the text
  names it (`mention_names`, whole words, an optional `@`), and the name is removed.
- A message Messages accepted and failed to deliver later comes back as `updated-message`
  (or `message-send-error`) with the bot's message and a non-zero `error`: the recorded
  delivery is marked failed (`link.delivery_failed`), so it shows on the session and in
  `channels.status`, not only on the Mac.
- Outbound text via `POST /api/v1/message/text` (AppleScript, or the Private API when the
  server has it, which also sends group answers as replies with `selectedMessageGuid`),
  files via `POST /api/v1/message/attachment` (multipart), typing via
  `POST /api/v1/chat/<guid>/typing` (Private API only). Attachments that come in are
  downloaded with `GET /api/v1/attachment/<guid>/download`.
- While running, a `ping` every `ping_interval_s` is the sign of life; a failing one (5xx,
  network) restarts the account with backoff, and the restart catches up as above.

The password travels in URLs: it is never put in a log line or an error message (errors
name the exception type only).

Reading BlueBubbles' message objects, which needs no I/O, is in `imessage_protocol.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import mimetypes
import re
import secrets
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    ChatKind,
    Media,
    OutboundMedia,
    PermanentSendError,
    RateLimited,
    Target,
    WebhookReply,
    WebhookRequest,
)
from .imessage_protocol import MentionRule, normalize, retry_after, send_error, sent_guid

__all__ = ["MAX_TEXT", "IMessageAdapter"]

logger = logging.getLogger(__name__)

#: iMessage has no documented limit; longer answers are split into bubbles of this size.
MAX_TEXT: Final = 4000
#: The largest attachment downloaded from the server.
MAX_DOWNLOAD: Final = 20 * 1024 * 1024
#: The largest webhook body read (a `new-message` event is a few kilobytes).
MAX_WEBHOOK_BYTES: Final = 512 * 1024
#: At most this many missed messages are fetched at a start (pages of `CATCH_UP_PAGE`).
MAX_CATCH_UP: Final = 500
CATCH_UP_PAGE: Final = 100
#: The catch-up starts this long before the cursor: events delivered out of order are
#: caught too, and dedupe drops what was already delivered.
CATCH_UP_OVERLAP_MS: Final = 60_000
#: How long one REST call may take (an AppleScript send waits for Messages to confirm).
REQUEST_TIMEOUT_S: Final = 60.0
#: The webhook events registered (the others are answered 200 and ignored).
EVENTS: Final = ("new-message", "updated-message", "message-send-error")
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.-]")


class IMessageAdapter:
    """One BlueBubbles server (one Apple ID signed in on its Mac)."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        options = account.options
        self._account = account
        self._link = link
        self._password = account.secret or ""
        self._server: str = options.get("server_url") or ""
        self._webhook_base: str = options.get("webhook_url") or ""
        self._ping_s = float(options.get("ping_interval_s", 30.0))
        self._mentions = MentionRule(tuple(options.get("mention_names") or ()))
        if not self._password:
            raise AuthFailed(
                f"the {account.key} server password is missing ({account.secret_source});"
                " it is the password set in the BlueBubbles server's settings"
            )
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            media=True,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=4 * self._ping_s + 10,
        )
        self._http: aiohttp.ClientSession | None = None
        self._private_api = False
        self._token = ""
        self._cursor = 0
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Check the server, register the webhook, catch up, then ping until cancelled."""
        for key, value in (("server_url", self._server), ("webhook_url", self._webhook_base)):
            if not value:
                raise AuthFailed(
                    f"{self._account.key}: [channels.imessage] needs {key}"
                    " (see the README's iMessage recipe)"
                )
        await self._api("GET", "ping")
        info = await self._api("GET", "server/info")
        info = info if isinstance(info, dict) else {}
        self._private_api = (
            bool(info.get("private_api")) and info.get("helper_connected") is not False
        )
        self._token = secrets.token_urlsafe(32)
        path = self._link.add_webhook(self._on_webhook, name=self._account.account_id)
        try:
            base = f"{self._webhook_base.rstrip('/')}/channels/{path}"
            await self._unregister(base)
            await self._api(
                "POST",
                "webhook",
                json={"url": f"{base}?token={self._token}", "events": list(EVENTS)},
            )
            self._link.connected()
            await self._catch_up()
            while True:
                await asyncio.sleep(self._ping_s)
                await self._api("GET", "ping")
                self._link.progress()
        finally:
            self._link.remove_webhook(path)

    async def _on_webhook(self, request: WebhookRequest) -> WebhookReply:
        """Authenticate one webhook POST by its token, then hand its message over."""
        if request.method != "POST":
            return WebhookReply(405)
        given = request.query.get("token", "")
        if not self._token or not hmac.compare_digest(given.encode(), self._token.encode()):
            return WebhookReply(401)
        if len(request.body) > MAX_WEBHOOK_BYTES:
            self._link.error(f"a {len(request.body)}-byte webhook body was too large")
            return WebhookReply(413)
        try:
            event = json.loads(request.body)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._link.error("the webhook received an unreadable event")
            return WebhookReply(400)
        self._link.progress()
        kind, data = event.get("type"), event.get("data")
        if kind not in EVENTS:
            return WebhookReply()  # typing-indicator, group changes, ...: not needed
        if not isinstance(data, dict):
            self._link.error(f"the webhook received a {kind} event without a message")
            return WebhookReply(400)
        if kind == "new-message":
            await self._receive(data)
        elif (failed := send_error(data)) is not None:
            guid, code = failed
            await self._link.delivery_failed(guid, f"Messages did not deliver it (error {code})")
        return WebhookReply()

    async def _receive(self, data: dict[str, Any]) -> None:
        """Normalize one message (downloading its attachments) and hand it to the layer."""
        message = normalize(data, self._account, self._mentions)
        if message is not None:
            if message.chat.kind is ChatKind.DM or message.mentioned:
                message = replace(message, media=await self._download(data))
            await self._link.deliver(message)
        else:
            self._log.debug("message skipped (own, tapback or empty)")
        created = data.get("dateCreated")
        if isinstance(created, int) and created > self._cursor:
            self._cursor = created
            await self._link.save_cursor(str(created))

    async def _catch_up(self) -> None:
        """Deliver the messages that came while no webhook was reachable (see the top)."""
        saved = await self._link.load_cursor()
        self._cursor = max(self._cursor, int(saved) if saved and saved.isdigit() else 0)
        if not self._cursor:
            # The first start: history before it is not answered; start from the newest.
            newest = await self._query({"limit": 1, "sort": "DESC"})
            created = newest[0].get("dateCreated") if newest else None
            if isinstance(created, int):
                self._cursor = created
                await self._link.save_cursor(str(created))
            return
        after = max(self._cursor - CATCH_UP_OVERLAP_MS, 0)
        fetched = 0
        while fetched < MAX_CATCH_UP:
            page = await self._query(
                {"after": after, "sort": "ASC", "limit": CATCH_UP_PAGE, "offset": fetched}
            )
            for data in page:
                await self._receive(data)
            fetched += len(page)
            if len(page) < CATCH_UP_PAGE:
                break
        if fetched:
            self._log.info("caught up on %d message(s) since the last start", fetched)

    async def _query(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        body = {**body, "with": ["chat", "chat.participants", "attachment", "handle"]}
        found = await self._api("POST", "message/query", json=body)
        return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []

    async def _download(self, data: dict[str, Any]) -> tuple[Media, ...]:
        """Download a message's attachments into the media folder."""
        attachments = data.get("attachments")
        media: list[Media] = []
        for item in attachments if isinstance(attachments, list) else ():
            guid = item.get("guid") if isinstance(item, dict) else None
            if not isinstance(guid, str) or not guid:
                continue
            size = item.get("totalBytes")
            if isinstance(size, int) and size > MAX_DOWNLOAD:
                self._link.error(f"a {size}-byte attachment was too large to download")
                continue
            mime = str(item.get("mimeType") or "application/octet-stream")
            name = str(item.get("transferName") or "")
            suffix = Path(name).suffix or mimetypes.guess_extension(mime) or ""
            path = self._link.media_dir / _UNSAFE_NAME.sub("_", f"{data['guid']}_{guid}{suffix}")
            try:
                content = await self._fetch(f"attachment/{quote(guid, safe='')}/download")
            except ChannelError as exc:
                self._link.error(f"an attachment could not be downloaded: {exc}")
                continue
            path.write_bytes(content)
            path.chmod(0o600)
            kind: Literal["photo", "document"] = (
                "photo" if mime.startswith("image/") else "document"
            )
            media.append(Media(str(path), mime, len(content), kind))
        return tuple(media)

    async def _unregister(self, base: str) -> None:
        """Delete the webhooks earlier starts registered at `base` (their tokens are dead)."""
        hooks = await self._api("GET", "webhook")
        for hook in hooks if isinstance(hooks, list) else ():
            url = hook.get("url") if isinstance(hook, dict) else None
            if isinstance(url, str) and url.split("?", 1)[0] == base:
                await self._api("DELETE", f"webhook/{hook.get('id')}")

    # -- sending --------------------------------------------------------------------

    def _method(self) -> str:
        return "private-api" if self._private_api else "apple-script"

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk of text (a reply when the Private API can); return its guid."""
        body: dict[str, Any] = {
            "chatGuid": target.chat_id,
            "tempGuid": f"temp-{uuid.uuid4()}",
            "message": text,
            "method": self._method(),
        }
        if target.reply_to and self._private_api:
            body["selectedMessageGuid"] = target.reply_to
        sent = await self._api("POST", "message/text", json=body)
        return sent_guid(sent, body["tempGuid"])

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Send a local file as an attachment (then its caption); an URL goes as a link."""
        if media.source.startswith(("http://", "https://")):
            text = f"{media.caption}\n{media.source}" if media.caption else media.source
            return await self.send_text(target, text)
        path = Path(media.source)
        temp = f"temp-{uuid.uuid4()}"
        form = aiohttp.FormData()
        form.add_field("chatGuid", target.chat_id)
        form.add_field("tempGuid", temp)
        form.add_field("name", path.name)
        form.add_field("method", self._method())
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise PermanentSendError(f"cannot read the file to send: {exc.strerror}") from None
        form.add_field("attachment", content, filename=path.name)
        sent = await self._api("POST", "message/attachment", data=form)
        if media.caption:
            await self.send_text(replace(target, reply_to=None), media.caption)
        return sent_guid(sent, temp)

    async def typing(self, target: Target) -> None:
        """Show the typing bubble (the Private API only; nothing otherwise)."""
        if self._private_api:
            await self._api("POST", f"chat/{quote(target.chat_id, safe='')}/typing")

    async def logout(self) -> None:
        """Delete this account's webhook registrations from the server."""
        if self._server and self._webhook_base:
            path = f"{self._account.channel}/{self._account.account_id}"
            await self._unregister(f"{self._webhook_base.rstrip('/')}/channels/{path}")

    async def close(self) -> None:
        """Close the HTTP session."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # -- the REST API -----------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    def _url(self, path: str) -> str:
        return f"{self._server.rstrip('/')}/api/v1/{path}"

    async def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/api/v1/<path>`; return the response's `data`, mapping errors (see `_check`)."""
        try:
            async with self._session().request(
                method, self._url(path), params={"guid": self._password}, **kwargs
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                self._check(response, body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(
                f"network error talking to BlueBubbles: {type(exc).__name__}"
            ) from None
        return body.get("data") if isinstance(body, dict) else None

    async def _fetch(self, path: str) -> bytes:
        """GET `/api/v1/<path>` as bytes (an attachment), at most `MAX_DOWNLOAD` of them."""
        try:
            async with self._session().get(
                self._url(path), params={"guid": self._password}
            ) as response:
                if response.status >= 300:
                    self._check(response, None)
                content = await response.content.read(MAX_DOWNLOAD + 1)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(
                f"network error talking to BlueBubbles: {type(exc).__name__}"
            ) from None
        if len(content) > MAX_DOWNLOAD:
            raise ChannelError("the attachment is larger than the download limit")
        return content

    def _check(self, response: aiohttp.ClientResponse, body: Any) -> None:
        """Raise the channel layer's error for a failed response.

        401 -> `AuthFailed`; 429 -> `RateLimited`; another 4xx (unknown chat, a reply
        without the Private API) -> `PermanentSendError`; 5xx -> `ChannelError` (retried).
        """
        status = response.status
        if status < 300:
            return
        error = body.get("error") if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        reason = f"HTTP {status}" + (f": {str(detail)[:200]}" if detail else "")
        if status == 401:
            raise AuthFailed(
                f"BlueBubbles refused the {self._account.key} password ({reason}); check the"
                f" password ({self._account.secret_source}) against the server's settings"
            )
        if status == 429:
            wait = retry_after(response.headers.get("Retry-After"))
            raise RateLimited(f"BlueBubbles asked to wait {wait:g} s", wait)
        if 400 <= status < 500:
            raise PermanentSendError(f"BlueBubbles refused the request ({reason})")
        raise ChannelError(f"BlueBubbles error ({reason})")
