"""A local stand-in for the WhatsApp Cloud API: Meta's Graph API, and Meta's webhook sender.

Served on loopback; `[channels.whatsapp] graph_base` points at `http://127.0.0.1:PORT/v21.0`
and every call carries the access token as `Authorization: Bearer`. Implemented, with the
shapes of Meta's Cloud API reference:

- `GET /v21.0/{phone-number-id}` -> `{verified_name, display_phone_number, id, quality_rating}`
  (what a client reads to check its token and number);
- `POST /v21.0/{phone-number-id}/messages` (JSON, `messaging_product: whatsapp`, `to`,
  `type` `text` / `image` / `document` / `audio` / `video`, an optional `context.message_id`
  to reply to a message; media by `link` or by an uploaded `id`) ->
  `{messaging_product, contacts: [{input, wa_id}], messages: [{id: "wamid..."}]}`; a text
  body over 4,096 characters is refused (code 100);
- `POST /v21.0/{phone-number-id}/media` (multipart: `messaging_product`, `type`, `file`) ->
  `{id}`;
- `GET /v21.0/{media-id}` -> `{messaging_product, url, mime_type, sha256, file_size, id}`,
  and `GET <url>` (Bearer token again) -> the bytes, for inbound media.

Errors are Graph's shape, `{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`: an unknown token is HTTP 401 code 190 (`OAuthException`); `script(kind,
*behaviours)` makes the next calls of one kind (`"messages"`, `"media"`, `"phone"`,
`"download"`) misbehave: `"500"` (code 1, service unavailable), `"429"` (code 80007, WABA
rate limit, `Retry-After: 1`), `"throughput"` (HTTP 429, code 130429), `"131047"` (the
24-hour re-engagement window has closed: HTTP 400), `"190"` (the token expired).

The webhook side plays Meta: `verify(...)` makes the subscription handshake GET
(`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`); `user_says(...)`,
`user_sends_media(...)` and `status(...)` POST `whatsapp_business_account` notifications
(`entry[].changes[].value.messages[]` / `statuses[]`, field `messages`) signed with
`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app secret>`. Like
Meta, a delivery answered with anything but 2xx (or not answered) is sent again, up to
`retries` more times `retry_interval_s` apart; `post(body, signature=...)` sends a raw
body once, for signature and payload tests.
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

import aiohttp
from aiohttp import web

__all__ = [
    "ACCESS_TOKEN",
    "APP_SECRET",
    "BUSINESS_NUMBER",
    "PHONE_NUMBER_ID",
    "VERIFY_TOKEN",
    "WABA_ID",
    "Delivery",
    "FakeWhatsApp",
    "Sent",
]

PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
BUSINESS_NUMBER = "15550783881"
ACCESS_TOKEN = "EAAJfakeWhatsAppCloudAccessTokenForTestsOnly0123456789"
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VERIFY_TOKEN = "clawgate-verify-7d41"
#: The Cloud API refuses longer text bodies.
MAX_TEXT = 4096
_VERSION = "v21.0"


@dataclass
class Sent:
    """A message the business sent through `POST /{phone-number-id}/messages`."""

    id: str
    to: str
    type: str
    text: str = ""
    reply_to: str | None = None
    media_id: str | None = None
    link: str | None = None
    caption: str = ""
    filename: str | None = None


@dataclass
class Delivery:
    """One webhook notification and what the receiver answered, attempt by attempt."""

    body: bytes
    statuses: list[int] = field(default_factory=list)

    @property
    def status(self) -> int:
        """The answer to the last attempt (0: no answer)."""
        return self.statuses[-1] if self.statuses else 0


@dataclass
class _Upload:
    data: bytes
    mime: str
    name: str


class FakeWhatsApp:
    """A running stand-in; `graph_base` goes into config, `target(url)` aims the webhooks."""

    def __init__(self, *, retries: int = 5, retry_interval_s: float = 0.2) -> None:
        self.sent: list[Sent] = []
        self.calls: list[str] = []
        self.deliveries: list[Delivery] = []
        self.tokens = {ACCESS_TOKEN}
        self.app_secret = APP_SECRET
        self.retries = retries
        self.retry_interval_s = retry_interval_s
        self.webhook_url = ""
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._media: dict[str, _Upload] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[Delivery]] = set()
        self.port = 0

    @property
    def graph_base(self) -> str:
        """The Graph API root with its version, as `[channels.whatsapp] graph_base`."""
        return f"http://127.0.0.1:{self.port}/{_VERSION}"

    async def start(self) -> None:
        """Serve on an ephemeral loopback port."""
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_get(f"/{_VERSION}/{{node}}", self._get_node)
        app.router.add_post(f"/{_VERSION}/{{phone}}/messages", self._messages)
        app.router.add_post(f"/{_VERSION}/{{phone}}/media", self._upload)
        app.router.add_get("/download/{media}", self._download)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop retrying, close the client and the server."""
        for task in list(self._pending):
            task.cancel()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def target(self, url: str) -> None:
        """Send webhooks to `url` (the callback URL entered in the app dashboard)."""
        self.webhook_url = url

    def script(self, kind: str, *behaviours: str) -> None:
        """Make the next calls of `kind` misbehave, one behaviour each (see the docstring)."""
        self._scripts[kind].extend(behaviours)

    def add_media(self, data: bytes, mime: str, name: str = "file") -> str:
        """Store a file a user sends; return its media id."""
        media_id = str(next(self._ids) + 900_000_000)
        self._media[media_id] = _Upload(data, mime, name)
        return media_id

    def media(self, media_id: str) -> bytes:
        """Return the bytes of an uploaded or stored media id."""
        return self._media[media_id].data

    # -- Meta's webhook sender ------------------------------------------------------------

    async def verify(
        self,
        verify_token: str = VERIFY_TOKEN,
        challenge: str = "1158201444",
        mode: str = "subscribe",
    ) -> tuple[int, str]:
        """Make the subscription handshake GET; return (status, body)."""
        assert self._http is not None
        params = {"hub.mode": mode, "hub.verify_token": verify_token, "hub.challenge": challenge}
        async with self._http.get(self.webhook_url, params=params) as response:
            return response.status, await response.text()

    def sign(self, body: bytes, secret: str | None = None) -> str:
        """Return the `X-Hub-Signature-256` value of `body`."""
        key = (secret or self.app_secret).encode()
        return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()

    async def post(self, body: bytes, *, signature: str | None = "sign") -> int:
        """POST a raw body once (signed unless `signature` is given or None); return the status."""
        assert self._http is not None
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = self.sign(body)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        async with self._http.post(self.webhook_url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def notify(self, value: dict[str, Any], *, wait: bool = True) -> Delivery:
        """Send one `messages`-field notification, retried like Meta; return its delivery."""
        body = json.dumps(_envelope(value)).encode()
        delivery = Delivery(body)
        self.deliveries.append(delivery)
        task = asyncio.create_task(self._deliver(delivery))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if wait:
            await asyncio.shield(task)
        return delivery

    async def redeliver(self, delivery: Delivery) -> Delivery:
        """Send a delivered notification again, byte for byte (as Meta may)."""
        again = Delivery(delivery.body)
        self.deliveries.append(again)
        await self._deliver(again)
        return again

    async def user_says(
        self,
        text: str,
        *,
        user: str = "16505551234",
        name: str = "Alice",
        reply_to: str | None = None,
        group_id: str | None = None,
        wait: bool = True,
    ) -> str:
        """A user sends a text message to the business number; return its `wamid`."""
        message = self._message(user, "text", {"text": {"body": text}}, reply_to)
        if group_id is not None:
            message["group_id"] = group_id
        await self.notify(_inbound(user, name, message), wait=wait)
        return str(message["id"])

    async def user_sends_media(
        self,
        kind: str,
        data: bytes,
        mime: str,
        *,
        user: str = "16505551234",
        name: str = "Alice",
        caption: str = "",
        filename: str | None = None,
    ) -> str:
        """A user sends an image or document (stored here, fetched by id); return its wamid."""
        media_id = self.add_media(data, mime, filename or "file")
        media: dict[str, Any] = {
            "mime_type": mime,
            "sha256": hashlib.sha256(data).hexdigest(),
            "id": media_id,
        }
        if caption:
            media["caption"] = caption
        if filename is not None:
            media["filename"] = filename
        message = self._message(user, kind, {kind: media}, None)
        await self.notify(_inbound(user, name, message))
        return str(message["id"])

    async def status(
        self, message_id: str, status: str, *, recipient: str = "16505551234", code: int = 131047
    ) -> Delivery:
        """Report `sent` / `delivered` / `read` / `failed` for a message the business sent."""
        entry: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": recipient,
        }
        if status == "failed":
            entry["errors"] = [_status_error(code)]
        value = {"messaging_product": "whatsapp", "metadata": _metadata(), "statuses": [entry]}
        return await self.notify(value)

    def _message(
        self, user: str, kind: str, content: dict[str, Any], reply_to: str | None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "from": user,
            "id": self._wamid(),
            "timestamp": str(int(time.time())),
            "type": kind,
            **content,
        }
        if reply_to is not None:
            message["context"] = {"from": BUSINESS_NUMBER, "id": reply_to}
        return message

    async def _deliver(self, delivery: Delivery) -> Delivery:
        assert self._http is not None
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": self.sign(delivery.body),
        }
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.retry_interval_s)
            try:
                async with self._http.post(
                    self.webhook_url, data=delivery.body, headers=headers
                ) as response:
                    await response.read()
                    delivery.statuses.append(response.status)
            except (aiohttp.ClientError, OSError):
                delivery.statuses.append(0)
            if 200 <= delivery.status < 300:
                break
        return delivery

    async def wait_delivered(self, timeout: float = 10.0) -> None:
        """Wait until every notification sent so far has its final answer."""
        async with asyncio.timeout(timeout):
            while self._pending:
                await asyncio.sleep(0.02)

    # -- the Graph API --------------------------------------------------------------------

    async def wait_sent(
        self, check: Callable[[Sent], bool] = lambda _: True, count: int = 1, timeout: float = 10.0
    ) -> list[Sent]:
        """Wait until `count` sent messages pass `check`; return them."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len([s for s in self.sent if check(s)]) >= count)
        return [s for s in self.sent if check(s)]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _refusal(self, request: web.Request, kind: str) -> web.Response | None:
        """The error this call gets: a bad token, else the next scripted behaviour."""
        self.calls.append(kind)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.tokens:
            return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if not self._scripts[kind]:
            return None
        behaviour = self._scripts[kind].popleft()
        if behaviour == "500":
            return _graph_error(500, 1, "An unknown error occurred", kind="OAuthException")
        if behaviour == "429":
            return _graph_error(429, 80007, "Rate limit issues", headers={"Retry-After": "1"})
        if behaviour == "throughput":
            return _graph_error(429, 130429, "Rate limit hit")
        if behaviour == "131047":
            return _graph_error(400, 131047, "Re-engagement message")
        if behaviour == "190":
            return _graph_error(401, 190, "Error validating access token: Session has expired")
        raise AssertionError(f"unknown behaviour {behaviour!r}")

    async def _get_node(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        kind = "phone" if node == PHONE_NUMBER_ID else "media"
        refused = self._refusal(request, kind)
        if refused is not None:
            return refused
        if node == PHONE_NUMBER_ID:
            return web.json_response(
                {
                    "verified_name": "Clawgate Test",
                    "display_phone_number": "+1 555-078-3881",
                    "id": PHONE_NUMBER_ID,
                    "quality_rating": "GREEN",
                }
            )
        upload = self._media.get(node)
        if upload is None:
            return _graph_error(400, 100, f"Unsupported get request. Object with ID '{node}'")
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"http://127.0.0.1:{self.port}/download/{node}",
                "mime_type": upload.mime,
                "sha256": hashlib.sha256(upload.data).hexdigest(),
                "file_size": str(len(upload.data)),
                "id": node,
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        refused = self._refusal(request, "download")
        if refused is not None:
            return refused
        upload = self._media.get(request.match_info["media"])
        if upload is None:
            return web.Response(status=404)
        return web.Response(body=upload.data, content_type=upload.mime)

    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._refusal(request, "upload")
        if refused is not None:
            return refused
        if request.match_info["phone"] != PHONE_NUMBER_ID:
            return _graph_error(400, 100, "Unsupported post request")
        form = await request.post()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(upload, web.FileField):
            return _graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        data = upload.file.read()
        mime = str(form.get("type") or upload.content_type)
        return web.json_response({"id": self.add_media(data, mime, upload.filename)})

    async def _messages(self, request: web.Request) -> web.Response:
        refused = self._refusal(request, "messages")
        if refused is not None:
            return refused
        if request.match_info["phone"] != PHONE_NUMBER_ID:
            return _graph_error(400, 100, "Unsupported post request")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _graph_error(400, 100, "(#100) Invalid parameter")
        if body.get("messaging_product") != "whatsapp" or not body.get("to"):
            return _graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        kind = body.get("type", "text")
        reply_to = (body.get("context") or {}).get("message_id")
        sent = Sent(id=self._wamid(), to=str(body["to"]), type=kind, reply_to=reply_to)
        if kind == "text":
            text = (body.get("text") or {}).get("body")
            if not isinstance(text, str) or not text:
                return _graph_error(400, 100, "(#100) The parameter text['body'] is required.")
            if len(text) > MAX_TEXT:
                return _graph_error(
                    400, 100, "(#100) Param text['body'] must be at most 4096 characters long."
                )
            sent.text = text
        elif kind in ("image", "document", "audio", "video"):
            media = body.get(kind) or {}
            sent.media_id, sent.link = media.get("id"), media.get("link")
            if (sent.media_id is None) == (sent.link is None):
                return _graph_error(400, 100, f"(#100) Param {kind} must have either id or link")
            if sent.media_id is not None and sent.media_id not in self._media:
                return _graph_error(400, 131053, "Media upload error")
            sent.caption = media.get("caption", "")
            sent.filename = media.get("filename")
        else:
            return _graph_error(400, 131051, "Unsupported message type")
        self.sent.append(sent)
        await self._notify()
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": sent.to, "wa_id": sent.to}],
                "messages": [{"id": sent.id}],
            }
        )

    def _wamid(self) -> str:
        return "wamid.HBgL" + secrets.token_hex(12).upper()


def _metadata() -> dict[str, str]:
    return {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": PHONE_NUMBER_ID}


def _inbound(user: str, name: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": _metadata(),
        "contacts": [{"profile": {"name": name}, "wa_id": user}],
        "messages": [message],
    }


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def _status_error(code: int) -> dict[str, Any]:
    titles = {131047: "Re-engagement message", 131026: "Message undeliverable"}
    title = titles.get(code, "Unknown error")
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
    }


def _graph_error(
    http_status: int,
    code: int,
    message: str,
    *,
    kind: str = "OAuthException",
    headers: dict[str, str] | None = None,
) -> web.Response:
    error = {
        "message": message,
        "type": kind,
        "code": code,
        "error_subcode": 2494010 if code == 131047 else 0,
        "fbtrace_id": "A" + secrets.token_hex(10),
    }
    return web.json_response({"error": error}, status=http_status, headers=headers)
