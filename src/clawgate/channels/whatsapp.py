"""WhatsApp through the official Cloud API (`mode = "cloud"`): Meta's webhooks in, Graph out.

No SDK: the Cloud API is plain HTTPS + JSON, spoken with aiohttp (the gateway's own HTTP
stack); the wire rules are in `whatsapp_protocol.py`.

- Inbound: Meta POSTs notifications to the one callback URL configured in the app's
  dashboard, `https://<public host>/channels/whatsapp/<account id>` (the account's named
  webhook path on the gateway port). The subscription GET is answered with `hub.challenge`
  only for the right verify token (403 otherwise); every POST must carry a valid
  `X-Hub-Signature-256` (401 and nothing done otherwise). A POST is answered 200 once its
  messages were handed to `link.deliver` (persisted): a POST that fails here gets 500 and
  Meta resends it, deduplicated by the `wamid`. What can never be read (other webhook
  fields, reactions, stickers, locations, malformed entries) is answered 200 and skipped,
  because Meta keeps resending non-2xx answers and may disable the subscription; only a
  signed body that is not JSON gets 400.
- DMs only: the Cloud API gives a business number no group chats, so a message carrying a
  `group_id` is read as a group message and gated as one. No threads; a reply quotes the
  message it answers (`context.message_id`).
- Media: images, documents, audio and video come as media ids (`GET /{media-id}` -> a short
  lived URL, downloaded with the token). A download that fails for now (network, 5xx, 429)
  answers the POST 503, so Meta resends it; a file that can never be fetched (too large,
  refused for good) is left out and the message goes on without it. Outbound files are
  uploaded (`POST /{phone-number-id}/media`) or sent by `link` when the source is an URL.
- Status webhooks: `failed` marks the delivery recorded by the layer failed (and shows the
  error in `channels.status`); `sent`, `delivered` and `read` are logged at debug only
  (one line per message per state would flood the log and is kept nowhere else).
- Text goes out in chunks of 4,096 characters (the Cloud API's limit). HTTP 429 and the
  rate-limit codes (4, 80007, 130429, 131056) raise `RateLimited`; code 190 (and 10, 200)
  fails the account with one clear error; a message the API refuses for good (131047: the
  24-hour window closed, 131026 undeliverable, ...) is `PermanentSendError`.
- A check of the token and the phone number (`GET /{phone-number-id}`) at start and every
  `PROBE_INTERVAL_S`: a refused token fails the account, a 5xx at start is retried by the
  supervisor with backoff; a later one is shown as the last error while the webhook keeps
  being served (sends are retried by the layer).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from pathlib import Path
from typing import Any, Final

import aiohttp

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    Media,
    OutboundMedia,
    PermanentSendError,
    Target,
    WebhookReply,
    WebhookRequest,
)
from .whatsapp_protocol import (
    MAX_TEXT,
    MEDIA_KINDS,
    CloudMessage,
    UnreadableNotification,
    classify_error,
    media_payload,
    normalize,
    parse_notification,
    sent_message_id,
    signature_ok,
    text_payload,
    verification,
)

__all__ = ["PROBE_INTERVAL_S", "WhatsAppAdapter"]

logger = logging.getLogger(__name__)

#: How often the token and the phone number are checked while the webhook is served.
PROBE_INTERVAL_S: Final = 30.0
#: Inbound files larger than this are not downloaded (the Cloud API allows up to 100 MB).
MAX_DOWNLOAD: Final = 50 * 1024 * 1024
# Concurrent Graph API requests per account.
POOL_SIZE: Final = 32
_TIMEOUT: Final = aiohttp.ClientTimeout(total=60, sock_connect=10)


class _Unfetchable(ChannelError):
    """An inbound file that will never be downloaded (the message goes on without it)."""


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


class WhatsAppAdapter:
    """One WhatsApp Business phone number on the Cloud API."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        options = account.options
        missing = [
            hint
            for value, hint in (
                (account.secret, f"the access token ({account.secret_source})"),
                (options.get("app_secret"), f"the app secret ({options.get('app_secret_source')})"),
                (
                    options.get("verify_token"),
                    f"the verify token ({options.get('verify_token_source')})",
                ),
                (options.get("phone_number_id"), "phone_number_id"),
            )
            if not value
        ]
        if missing:
            raise AuthFailed(f"{account.key} is missing {', '.join(missing)}")
        self._account = account
        self._link = link
        self._token = str(account.secret)
        self._app_secret = str(options["app_secret"])
        self._verify_token = str(options["verify_token"])
        self._phone = str(options["phone_number_id"])
        self._graph: str = str(options["graph_base"]).rstrip("/")
        self.capabilities = Capabilities(
            dm=True,
            groups=False,
            threads=False,
            media=True,
            max_text=MAX_TEXT,
            stall_after_s=4 * PROBE_INTERVAL_S,
        )
        self._http: aiohttp.ClientSession | None = None
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE),
                timeout=_TIMEOUT,
                headers={"Authorization": f"Bearer {self._token}"},
            )
        return self._http

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Check the token, serve the webhook, and re-check the token until cancelled."""
        await self._probe()
        path = self._link.add_webhook(self._on_webhook, name=self._account.account_id)
        try:
            self._link.connected()
            while True:
                await asyncio.sleep(PROBE_INTERVAL_S)
                try:
                    await self._probe()
                except AuthFailed:
                    raise
                except ChannelError as exc:
                    # The webhook still receives; sends are retried by the layer.
                    self._link.error(str(exc))
                self._link.progress()
        finally:
            self._link.remove_webhook(path)

    async def _probe(self) -> None:
        """Ask for the phone number with the token (refused token -> `AuthFailed`)."""
        await self._request("GET", f"{self._graph}/{self._phone}", params={"fields": "id"})

    async def _on_webhook(self, request: WebhookRequest) -> WebhookReply:
        """Answer Meta's verification GET, or read one signed notification."""
        if request.method == "GET":
            status, text = verification(request.query, self._verify_token)
            return WebhookReply(status, text)
        if request.method != "POST":
            return WebhookReply(405)
        signature = request.headers.get("x-hub-signature-256")
        if not signature_ok(self._app_secret, request.body, signature):
            self._log.warning("a webhook POST with a missing or wrong signature was refused")
            return WebhookReply(401)
        try:
            notification = parse_notification(request.body)
        except UnreadableNotification as exc:
            self._link.error(str(exc))
            return WebhookReply(400)
        self._link.progress()
        for message in notification.messages:
            try:
                media = await self._download(message) if message.media_id else ()
            except ChannelError as exc:
                # Answered 503: Meta resends the notification, and what was delivered from it
                # already is deduplicated then.
                self._link.error(f"a file could not be fetched yet ({exc}); Meta will resend it")
                return WebhookReply(503)
            inbound = normalize(message, self._account, media)
            if inbound is None:
                self._log.debug("message %s skipped (nothing left to read)", message.id)
                continue
            await self._link.deliver(inbound)
        for update in notification.statuses:
            if update.status == "failed":
                reason = f"WhatsApp could not deliver a message: {update.error or 'no reason'}"
                await self._link.delivery_failed(update.message_id, reason)
            else:
                self._log.debug("message %s %s", update.message_id, update.status)
        if notification.skipped:
            self._log.debug("%d webhook entries skipped (not read here)", notification.skipped)
        return WebhookReply()

    async def _download(self, message: CloudMessage) -> tuple[Media, ...]:
        """Download a message's file into the media folder.

        Returns nothing for a file that can never be fetched (too large, refused for good, a
        malformed answer); raises `ChannelError` for a failure worth Meta's resend (network,
        5xx, rate limit, a refused token, a full disk).
        """
        assert message.media_id is not None
        kind = MEDIA_KINDS[message.kind]
        try:
            info = await self._request("GET", f"{self._graph}/{message.media_id}")
            size = int(info.get("file_size") or 0)
            if size > MAX_DOWNLOAD:
                raise _Unfetchable(f"a {size}-byte file is too large to download")
            suffix = Path(message.filename or "").suffix or (
                mimetypes.guess_extension(message.mime) or ""
            )
            path = self._link.media_dir / f"{message.sender}_{message.media_id}{suffix}"
            async with self._session().get(str(info["url"])) as response:
                if 400 <= response.status < 500 and response.status != 429:
                    raise _Unfetchable(f"the download answered HTTP {response.status}")
                if response.status != 200:
                    raise ChannelError(f"the download answered HTTP {response.status}")
                data = await response.content.read(MAX_DOWNLOAD + 1)
            if len(data) > MAX_DOWNLOAD:
                raise _Unfetchable("a file is too large to download")
            await asyncio.to_thread(_write_private, path, data)
        except (_Unfetchable, PermanentSendError) as exc:
            self._link.error(f"a {kind} could not be downloaded: {exc}")
            return ()
        except (KeyError, TypeError, ValueError) as exc:
            self._link.error(f"a {kind} could not be downloaded: {type(exc).__name__}")
            return ()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(f"{type(exc).__name__} while downloading a {kind}") from None
        return (Media(str(path), message.mime, len(data), kind),)  # type: ignore[arg-type]

    # -- sending --------------------------------------------------------------------

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk, quoting the message it answers; return its `wamid`."""
        payload = text_payload(target.chat_id, text, target.reply_to)
        data = await self._request("POST", f"{self._graph}/{self._phone}/messages", json=payload)
        return sent_message_id(data)

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Send an image or document by link (an URL) or uploaded first (a local path)."""
        kind = "image" if media.kind == "photo" else "document"
        if media.source.startswith(("http://", "https://")):
            name = media.source.rsplit("/", 1)[-1] or None
            payload = media_payload(
                target.chat_id,
                kind,
                link=media.source,
                caption=media.caption,
                filename=name,
                reply_to=target.reply_to,
            )
        else:
            path = Path(media.source)
            media_id = await self._upload(path)
            payload = media_payload(
                target.chat_id,
                kind,
                media_id=media_id,
                caption=media.caption,
                filename=path.name,
                reply_to=target.reply_to,
            )
        data = await self._request("POST", f"{self._graph}/{self._phone}/messages", json=payload)
        return sent_message_id(data)

    async def _upload(self, path: Path) -> str:
        """Upload a local file (`POST /{phone-number-id}/media`); return its media id."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise PermanentSendError(f"the file cannot be read: {exc.strerror or exc}") from None
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime)
        form.add_field("file", data, filename=path.name, content_type=mime)
        answer = await self._request("POST", f"{self._graph}/{self._phone}/media", data=form)
        if not isinstance(answer.get("id"), str):
            raise ChannelError("the Cloud API answered an upload without a media id")
        return str(answer["id"])

    async def typing(self, target: Target) -> None:
        """The Cloud API shows typing only with a read receipt; nothing to do."""

    async def logout(self) -> None:
        """Nothing is registered from here: the callback URL lives in the app's dashboard."""

    async def close(self) -> None:
        """Close the HTTP session."""
        http, self._http = self._http, None
        if http is not None and not http.closed:
            await http.close()

    # -- errors ---------------------------------------------------------------------

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """Make one Graph API call; return its JSON object or raise the layer's error."""
        try:
            async with self._session().request(method, url, **kwargs) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                if response.status >= 400 or (isinstance(data, dict) and "error" in data):
                    raise classify_error(
                        response.status,
                        data,
                        response.headers.get("Retry-After"),
                        self._account.key,
                    )
                if not isinstance(data, dict):
                    raise ChannelError(
                        f"the Cloud API answered HTTP {response.status} without JSON"
                    )
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChannelError(
                f"network error talking to the Cloud API: {type(exc).__name__}"
            ) from None
