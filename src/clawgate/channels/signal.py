"""Signal through signal-cli's HTTP daemon: JSON-RPC to send, Server-Sent Events to receive.

signal-cli (`signal-cli -a +NUMBER daemon --http 127.0.0.1:8080`) holds the account's keys
and speaks the Signal protocol; this module is a small client of its three endpoints (there
is no Python SDK): `POST /api/v1/rpc` (JSON-RPC 2.0), `GET /api/v1/events` (a `receive`
event per envelope) and `GET /api/v1/check`. The account number is the identity: no
credential is configured here.

- `listGroups` at start checks the daemon holds the account: signal-cli answers -32602
  "Specified account does not exist" (and the event stream 400) for one it was never
  linked or registered with, which fails the account once (no retry storm).
- The event stream is read with `sse.SseDecoder`. Each envelope with a `dataMessage`
  becomes one `InboundMessage`, id `<sender>:<timestamp>` (Signal's message identity), and
  only after `link.deliver` returned is its event id saved as the cursor: a reconnect sends
  it as `Last-Event-ID` and signal-cli replays what came after (it keeps 1,000 events). A
  stream that ends or goes quiet past `STALL_AFTER_S` (signal-cli sends a keep-alive
  every 15 s) is restarted by the supervisor with backoff and jitter.
- DMs; groups (`groupInfo.groupId`) mention-gated: a mention carries the bot's number or
  uuid (its U+FFFC placeholder is taken out of the text), and a quote of the bot's own
  message counts as one. The sender id is the number, or the uuid when Signal hides it.
- Replies quote the message they answer (`quoteTimestamp`, `quoteAuthor`). Attachments in
  are copied from signal-cli's attachments folder (by the attachment's id) into the media
  folder; out they go as `attachments` (local paths). `sendTyping` shows typing.
- Text goes in chunks of 4,000 characters (signal-cli sends a long text as Signal's
  long-text attachment; 4,000 keeps each message readable on every client).

Reading envelopes and signal-cli's errors, which needs no I/O, is in `signal_protocol.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import aiohttp

from .base import (
    AccountConfig,
    AccountLink,
    AuthFailed,
    Capabilities,
    ChannelError,
    InboundMessage,
    Media,
    OutboundMedia,
    RateLimited,
    Target,
)
from .signal_protocol import E164, attachments_of, is_group, normalize, rpc_error
from .sse import SseDecoder

__all__ = ["MAX_TEXT", "SignalAdapter"]

logger = logging.getLogger(__name__)

#: Characters a message holds (signal-cli turns longer text into a long-text attachment).
MAX_TEXT: Final = 4000
#: signal-cli sends a keep-alive every 15 s; a stream silent for this long is restarted.
STALL_AFTER_S: Final = 60.0
#: An event larger than this is dropped unread (a Signal envelope is a few KiB).
MAX_EVENT_BYTES: Final = 1024 * 1024
#: Attachments larger than this are not copied (Signal's own limit is 100 MiB).
MAX_DOWNLOAD: Final = 100 * 1024 * 1024
#: How long one JSON-RPC call may take (a send with attachments uploads them first).
RPC_TIMEOUT_S: Final = 60.0
_KINDS: Final = {"image": "photo", "audio": "audio", "video": "video"}
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.-]")


class SignalAdapter:
    """One Signal account held by a signal-cli HTTP daemon."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        number = str(account.options.get("account") or "")
        if not E164.fullmatch(number):
            raise AuthFailed(
                f"the {account.key} account number is missing or malformed ({number or 'unset'});"
                " set [channels.signal] account to the number signal-cli holds, e.g. +15551234567"
            )
        self._account = account
        self._link = link
        self._number = number
        self._url: str = str(account.options["http_url"]).rstrip("/")
        self._attachments_dir = Path(str(account.options["attachments_dir"])).expanduser()
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            media=True,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=STALL_AFTER_S,
        )
        self._http: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._last_event_id: str | None = None
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Check the account, then read the event stream until cancelled or cut."""
        await self._rpc("listGroups")
        if self._last_event_id is None:
            self._last_event_id = await self._link.load_cursor()
        headers = {"Accept": "text/event-stream"}
        if self._last_event_id is not None:
            headers["Last-Event-ID"] = self._last_event_id
        # No total timeout: the stream lasts; a silent one is the supervisor's stall.
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
        try:
            async with self._client().get(
                f"{self._url}/api/v1/events",
                params={"account": self._number},
                headers=headers,
                timeout=timeout,
            ) as response:
                if response.status == 400:
                    raise AuthFailed(
                        f"signal-cli does not hold the account {self._account.key}; link it"
                        " (signal-cli link -n clawgate) or register it, then restart the daemon"
                    )
                if response.status != 200:
                    raise ChannelError(
                        f"signal-cli answered HTTP {response.status} on /api/v1/events"
                    )
                self._link.connected()
                decoder = SseDecoder(MAX_EVENT_BYTES)
                async for chunk in response.content.iter_any():
                    self._link.progress()
                    dropped = decoder.dropped
                    for event in decoder.feed(chunk):
                        if event.event == "receive":
                            await self._receive(event.data, event.id)
                    if decoder.dropped > dropped:
                        self._link.error("an event larger than 1 MiB was skipped")
        except (aiohttp.ClientError, OSError) as exc:
            raise ChannelError(
                f"the signal-cli event stream failed: {type(exc).__name__}; reconnecting"
            ) from None
        raise ChannelError("signal-cli closed the event stream; reconnecting")

    async def _receive(self, data: str, event_id: str | None) -> None:
        """Hand one `receive` event's message over, then keep its id as the cursor."""
        try:
            params = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack
            params = None
        envelope = params.get("envelope") if isinstance(params, dict) else None
        owner = params.get("account") if isinstance(params, dict) else None
        message = None
        if owner in (None, self._number):
            message = normalize(envelope, self._account, self._number)
        if message is not None and isinstance(envelope, dict):
            media = await self._copy_attachments(envelope, message)
            if media:
                message = replace(message, media=media)
            await self._link.deliver(message)
        else:
            self._log.debug("event %s skipped (not a message for this account)", event_id)
        if event_id is not None:
            # Saved once delivered (persisted or refused): a reconnect replays after it.
            self._last_event_id = event_id
            await self._link.save_cursor(event_id)

    async def _copy_attachments(
        self, envelope: dict[str, Any], message: InboundMessage
    ) -> tuple[Media, ...]:
        """Copy a message's attachments from signal-cli's folder into the media folder."""
        media: list[Media] = []
        stem = re.sub(r"[^A-Za-z0-9]", "", message.sender.id)
        for item in attachments_of(envelope):
            size = item.get("size")
            if isinstance(size, int) and size > MAX_DOWNLOAD:
                self._link.error(f"a {size}-byte attachment was too large to copy")
                continue
            source = self._attachments_dir / item["id"]
            mime = item.get("contentType")
            mime = mime if isinstance(mime, str) and "/" in mime else "application/octet-stream"
            # The sender's client names the file: only safe characters reach the path (a NUL
            # or a lone surrogate would make the copy raise).
            suffix = _UNSAFE_NAME.sub("_", Path(str(item.get("filename") or item["id"])).suffix)
            suffix = suffix[:16]
            path = self._link.media_dir / f"{stem}_{message.received_at}_{Path(item['id']).stem}"
            path = path.with_name(path.name + suffix)
            try:
                copied = await asyncio.to_thread(_copy, source, path)
            except OSError as exc:
                self._link.error(
                    f"an attachment could not be read from signal-cli's attachments folder"
                    f" ({exc.strerror or type(exc).__name__})"
                )
                continue
            kind = _KINDS.get(mime.split("/", 1)[0], "document")
            media.append(Media(str(path), mime, copied, kind))  # type: ignore[arg-type]
        return tuple(media)

    # -- sending --------------------------------------------------------------------

    def _address(self, target: Target) -> dict[str, Any]:
        chat = target.chat_id.removeprefix("group:")
        if target.chat_id.startswith("group:") or is_group(chat):
            return {"groupId": chat}
        return {"recipient": [chat]}

    def _quote(self, target: Target) -> dict[str, Any]:
        author, _, timestamp = (target.reply_to or "").rpartition(":")
        if author and timestamp.isdigit():
            return {"quoteTimestamp": int(timestamp), "quoteAuthor": author}
        return {}

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk (quoting the message it answers); return `<account>:<timestamp>`."""
        params = {**self._address(target), **self._quote(target), "message": text}
        result = await self._rpc("send", params)
        return self._sent_id(result)

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Send a local file as an attachment (with its caption); an URL goes as a link.

        signal-cli reads attachments from its own file system and fetches no URLs.
        """
        if media.source.startswith(("http://", "https://")):
            text = f"{media.caption}\n{media.source}" if media.caption else media.source
            return await self.send_text(target, text)
        params: dict[str, Any] = {**self._address(target), **self._quote(target)}
        params["attachments"] = [media.source]
        params["message"] = media.caption
        return self._sent_id(await self._rpc("send", params))

    async def typing(self, target: Target) -> None:
        """Show the typing indicator in the chat (`sendTyping`)."""
        await self._rpc("sendTyping", self._address(target))

    def _sent_id(self, result: Any) -> str:
        timestamp = result.get("timestamp") if isinstance(result, dict) else None
        return f"{self._number}:{timestamp}"

    async def logout(self) -> None:
        """Nothing to undo: signal-cli keeps the account linked (unlink it on the phone)."""

    async def close(self) -> None:
        """Close the HTTP session."""
        http, self._http = self._http, None
        if http is not None and not http.closed:
            await http.close()

    # -- JSON-RPC -------------------------------------------------------------------

    async def _rpc(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call one signal-cli method for this account; return its `result`."""
        body = {
            "jsonrpc": "2.0",
            "method": method,
            "params": {**(params or {}), "account": self._number},
            "id": next(self._ids),
        }
        try:
            async with self._client().post(
                f"{self._url}/api/v1/rpc",
                json=body,
                timeout=aiohttp.ClientTimeout(total=RPC_TIMEOUT_S),
            ) as response:
                if response.status == 429:
                    raise RateLimited("signal-cli asked to wait", 1.0)
                if response.status != 200:
                    raise ChannelError(f"signal-cli answered HTTP {response.status} to {method}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise ChannelError(
                f"network error talking to signal-cli at {self._url}: {type(exc).__name__}"
            ) from None
        if not isinstance(answer, dict):
            raise ChannelError(f"signal-cli answered {method} with no JSON-RPC response")
        if "error" in answer and answer["error"] is not None:
            raise rpc_error(answer["error"], self._account)
        return answer.get("result")


def _copy(source: Path, path: Path) -> int:
    """Copy `source` to `path` (0600) and return its size; refuse oversized files."""
    if source.stat().st_size > MAX_DOWNLOAD:
        raise OSError(27, "File too large")
    shutil.copyfile(source, path)
    path.chmod(0o600)
    return path.stat().st_size
