"""Personal WhatsApp (WhatsApp Web multi-device) through neonize — experimental.

neonize wraps whatsmeow (Go), which speaks WhatsApp Web's multi-device protocol: the
gateway becomes one of the phone's "linked devices". Nothing here can be reached from a test
machine, so what is verified is our side (README "WhatsApp (personal)"): event translation
from neonize's own protobuf types, the QR flow, the session lock and the reconnect policy.

- **Linking.** Without a saved session whatsmeow offers QR codes (one every ~20 s); each
  goes to `QrLogin`, which `web.login.start` hands to `clawgate channels login whatsapp`
  (drawn in the terminal) and to the WebChat page. Once scanned, the session is saved in
  `<home>/whatsapp/<account>/session.db` (0600, its folder 0700) and reused at every start.
- **One opener per host.** `SessionLock` is taken before the session is opened: a second
  gateway on the same home is refused with one status line, never a takeover loop.
- **Reconnects.** whatsmeow reconnects a dropped socket itself; `LinkWatch` waits that out
  and asks the supervisor for a rebuild (backoff with jitter) only past a grace period, and
  stops the account for good on logout, takeover, ban or an outdated client.
- **Messages.** DMs and groups (mention-gated by the layer: a mention of our number, or a
  reply to us). Text, captions, and images/documents/audio/video downloaded under the
  media folder. Replies quote the message by id; typing shows "composing…".
- **Acks.** whatsmeow sends delivery receipts as it decodes a message, before the gateway has
  persisted it: unlike Telegram's offset, a crash in that instant can lose the message. The
  window is the time of one SQLite write.

neonize logs at DEBUG what it decodes; its loggers are held at WARNING (no message text).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Final

from neonize.aioze.client import NewAClient
from neonize.aioze.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import SendMessageError
from neonize.proto.Neonize_pb2 import JID
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContextInfo,
    ExtendedTextMessage,
    Message,
)
from neonize.utils.enum import ChatPresence, ChatPresenceMedia

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
    Sender,
    Target,
)
from .qr_login import QrLogin
from .session_lock import SessionLock
from .whatsapp_watch import LinkWatch, Verdict, WatchPolicy

__all__ = ["MAX_TEXT", "WhatsAppWebAdapter", "format_jid", "parse_jid", "translate"]

logger = logging.getLogger(__name__)
for _name in ("neonize", "whatsmeow", "Whatsmeow"):
    logging.getLogger(_name).setLevel(logging.WARNING)

#: WhatsApp accepts ~65,000 characters; long replies read better as several messages.
MAX_TEXT: Final = 4096
#: The largest inbound file downloaded (bigger ones are named to the agent, not fetched).
MAX_MEDIA_BYTES: Final = 50 * 1024 * 1024
#: How often the session's health is checked; each healthy check is a sign of life.
WATCH_INTERVAL_S: Final = 1.0
_USER_SERVER: Final = "s.whatsapp.net"
_GROUP_SERVER: Final = "g.us"
# Chats that are not conversations: status updates, broadcast lists, channels.
_SKIPPED_SERVERS: Final = frozenset({"broadcast", "newsletter"})
_MEDIA_KINDS: Final = {
    "imageMessage": ("photo", ".jpg"),
    "documentMessage": ("document", ""),
    "audioMessage": ("audio", ".ogg"),
    "videoMessage": ("video", ".mp4"),
}


def format_jid(jid: JID) -> str:
    """Return a person's phone number, or `user@server` for a group or other id.

    Without the device part: one id per person or group. A bare number for people, so
    `allow_from` and session keys read the same as in the Cloud API mode.
    """
    if jid.Server == _USER_SERVER and jid.User:
        return str(jid.User)
    return f"{jid.User}@{jid.Server}" if jid.User else jid.Server


def parse_jid(text: str) -> JID:
    """Parse a chat id: `user@server`, or a bare phone number (a person).

    Raises:
        PermanentSendError: not a WhatsApp id.
    """
    user, _, server = text.partition("@")
    user = user.lstrip("+")
    server = server or _USER_SERVER
    if not user or server not in (_USER_SERVER, _GROUP_SERVER, "lid"):
        raise PermanentSendError(f"{text!r} is not a WhatsApp chat id (number@s.whatsapp.net)")
    return JID(User=user, Server=server, IsEmpty=False)


def _text_and_context(message: Message) -> tuple[str, ContextInfo | None]:
    """Return the text a message carries (body or caption) and its context, if any."""
    if message.conversation:
        return message.conversation, None
    if message.HasField("extendedTextMessage"):
        ext = message.extendedTextMessage
        return ext.text, ext.contextInfo if ext.HasField("contextInfo") else None
    for field in _MEDIA_KINDS:
        if message.HasField(field):
            part = getattr(message, field)
            context = part.contextInfo if part.HasField("contextInfo") else None
            return getattr(part, "caption", ""), context
    return "", None


def media_field(message: Message) -> str | None:
    """Return which media part a message has (`imageMessage`, ...), if any."""
    return next((f for f in _MEDIA_KINDS if message.HasField(f)), None)


def translate(
    event: MessageEv,
    account: AccountConfig,
    me: str,
    received_at: int,
    media: tuple[Media, ...] = (),
) -> InboundMessage | None:
    """Turn one neonize `Message` event into an `InboundMessage`, or None to skip it.

    `me` is our own number (the user part of our JID): a mention of it, or a reply to one
    of our messages, mentions us. Our own messages, status updates, broadcasts, channels and
    messages with neither text nor media are skipped.
    """
    info = event.Info
    source = info.MessageSource
    if source.IsFromMe or source.Chat.Server in _SKIPPED_SERVERS or not info.ID:
        return None
    text, context = _text_and_context(event.Message)
    if not text and not media and media_field(event.Message) is None:
        return None
    mentioned = False
    reply_to = None
    if context is not None:
        mentioned = any(jid.partition("@")[0] == me for jid in context.mentionedJID)
        mentioned |= bool(me) and context.participant.partition("@")[0] == me
        reply_to = context.stanzaID or None
    group = source.IsGroup
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=info.ID,
        sender=Sender(format_jid(source.Sender), info.Pushname),
        chat=ChatRef(format_jid(source.Chat), ChatKind.GROUP if group else ChatKind.DM),
        text=text,
        received_at=received_at,
        media=media,
        reply_to=reply_to,
        mentioned=mentioned,
    )


class WhatsAppWebAdapter:
    """One linked device of one WhatsApp number (see the module docstring)."""

    def __init__(self, account: AccountConfig, link: AccountLink) -> None:
        self._account = account
        self._link = link
        self._dir = Path(account.options["session_dir"])
        self._policy = WatchPolicy(
            reconnect_grace_s=float(account.options.get("reconnect_grace_s", 60.0)),
            link_timeout_s=float(account.options.get("link_timeout_s", 180.0)),
        )
        self.qr_login = QrLogin()
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            threads=False,
            media=False,
            typing=True,
            max_text=MAX_TEXT,
            stall_after_s=self._policy.reconnect_grace_s * 2 + 30,
        )
        self._client: Any = None
        self._me = ""
        self._watch = LinkWatch(self._policy, time.monotonic())

    @property
    def session_path(self) -> Path:
        """The session database whatsmeow keeps (keys, contacts, the device identity)."""
        return self._dir / "session.db"

    async def run(self) -> None:
        """Open the session (under the lock), link or connect, and receive until cancelled."""
        lock = SessionLock(self._dir / "session.lock")
        lock.acquire()
        client = None
        try:
            self._prepare_files()
            self._watch = LinkWatch(self._policy, time.monotonic())
            client = self._client = NewAClient(str(self.session_path))
            self._subscribe(client)
            task = await client.connect()
            await self._watch_until_done(task)
        finally:
            self._client = None
            await self._close_client(client)
            lock.release()

    def _prepare_files(self) -> None:
        """Create the session folder (0700) and database file (0600) before whatsmeow does."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        fd = os.open(self.session_path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.session_path, 0o600)

    async def _watch_until_done(self, task: asyncio.Future[Any]) -> None:
        while True:
            if task.done():
                error = task.exception()
                raise ChannelError(
                    f"the WhatsApp client stopped: {error}" if error else "the client stopped"
                )
            verdict = self._watch.verdict(time.monotonic())
            if verdict is Verdict.FAIL:
                raise AuthFailed(self._watch.failure or "the session ended")
            if verdict is Verdict.RESTART:
                raise ChannelError("disconnected from WhatsApp for too long; reconnecting")
            if self._watch.connected or self._watch.linking_since is not None:
                self._link.progress()
            await asyncio.sleep(WATCH_INTERVAL_S)

    def _subscribe(self, client: Any) -> None:
        """Route neonize's events to the watch, the QR login and the channel layer."""
        watch = self._watch

        async def on_qr(_: Any, code: bytes) -> None:
            first = watch.linking_since is None
            watch.qr_shown(time.monotonic())
            await self.qr_login.offer(code.decode())
            if first:
                self._link.error(
                    "not linked yet: run `clawgate channels login whatsapp` and scan the QR code"
                )

        async def on_connected(_: Any, __: ConnectedEv) -> None:
            watch.up()
            me = getattr(client, "me", None)
            self._me = str(getattr(getattr(me, "JID", None), "User", "") or "")
            self._secure_files()
            await self.qr_login.link()
            self._link.connected()

        async def on_down(_: Any, __: Any) -> None:
            watch.down(time.monotonic())
            self._link.error("connection to WhatsApp lost; whatsmeow is reconnecting")

        async def on_restored(_: Any, __: Any) -> None:
            watch.up()
            self._link.connected()

        async def on_logged_out(_: Any, __: LoggedOutEv) -> None:
            watch.logged_out()

        async def on_replaced(_: Any, __: StreamReplacedEv) -> None:
            watch.replaced()

        async def on_ban(_: Any, event: TemporaryBanEv) -> None:
            watch.banned(int(event.Code), int(event.Expire))

        async def on_outdated(_: Any, __: ClientOutdatedEv) -> None:
            watch.outdated()

        async def on_connect_failure(_: Any, event: ConnectFailureEv) -> None:
            watch.connect_failed(int(event.Reason), event.Message)

        async def on_message(_: Any, event: MessageEv) -> None:
            await self._receive(event)

        client.event.qr(on_qr)
        client.event(ConnectedEv)(on_connected)
        client.event(DisconnectedEv)(on_down)
        client.event(KeepAliveTimeoutEv)(on_down)
        client.event(KeepAliveRestoredEv)(on_restored)
        client.event(LoggedOutEv)(on_logged_out)
        client.event(StreamReplacedEv)(on_replaced)
        client.event(TemporaryBanEv)(on_ban)
        client.event(ClientOutdatedEv)(on_outdated)
        client.event(ConnectFailureEv)(on_connect_failure)
        client.event(MessageEv)(on_message)

    def _secure_files(self) -> None:
        """Keep the session files private (SQLite may create its -wal/-shm beside it)."""
        for path in self._dir.glob("session.db*"):
            os.chmod(path, 0o600)

    async def _receive(self, event: MessageEv) -> None:
        now = int(time.time() * 1000)
        message = translate(event, self._account, self._me, now)
        if message is None:
            return
        media = await self._download(event)
        if media:
            message = translate(event, self._account, self._me, now, media) or message
        await self._link.deliver(message)

    async def _download(self, event: MessageEv) -> tuple[Media, ...]:
        """Fetch an inbound file into the media folder (none past `MAX_MEDIA_BYTES`)."""
        field = media_field(event.Message)
        client = self._client
        if field is None or client is None:
            return ()
        part = getattr(event.Message, field)
        size = int(getattr(part, "fileLength", 0) or 0)
        if size > MAX_MEDIA_BYTES:
            self._link.error(f"skipped a {size}-byte file (over {MAX_MEDIA_BYTES} bytes)")
            return ()
        kind, suffix = _MEDIA_KINDS[field]
        try:
            data = await client.download_any(event.Message)
        except Exception as exc:  # neonize raises its own DownloadError and ctypes errors
            self._link.error(f"could not download a {kind}: {type(exc).__name__}")
            return ()
        safe_id = "".join(c for c in event.Info.ID if c.isalnum())[:64] or "file"
        path = self._link.media_dir / f"{safe_id}{suffix}"
        path.write_bytes(data)
        mime = str(getattr(part, "mimetype", "") or "application/octet-stream")
        return (Media(str(path), mime.split(";")[0], len(data), kind),)  # type: ignore[arg-type]

    # -- outbound ---------------------------------------------------------------------

    def _connected_client(self) -> Any:
        client = self._client
        if client is None or not self._watch.connected:
            raise ChannelError("not connected to WhatsApp yet")
        return client

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk, quoting `reply_to` when set; return its message id."""
        client = self._connected_client()
        jid = parse_jid(target.chat_id)
        message: Message | str = text
        if target.reply_to:
            message = Message(
                extendedTextMessage=ExtendedTextMessage(
                    text=text, contextInfo=ContextInfo(stanzaID=target.reply_to)
                )
            )
        try:
            response = await client.send_message(jid, message)
        except SendMessageError as exc:
            raise ChannelError(f"WhatsApp did not take the message: {exc}") from None
        return str(response.ID)

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """Files are not sent in this mode (see `capabilities`)."""
        raise PermanentSendError("WhatsApp (personal) sends text only for now")

    async def typing(self, target: Target) -> None:
        """Show "composing…" in the chat."""
        client = self._connected_client()
        await client.send_chat_presence(
            parse_jid(target.chat_id),
            ChatPresence.CHAT_PRESENCE_COMPOSING,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
        )

    async def logout(self) -> None:
        """Unlink this device from the phone and forget the session; best effort."""
        client = self._client
        if client is not None:
            try:
                await client.logout()
            except Exception as exc:  # the device may be unlinked already
                logger.info("whatsapp logout: %s", type(exc).__name__)
        for path in self._dir.glob("session.db*"):
            path.unlink(missing_ok=True)

    async def close(self) -> None:
        """Nothing outlives `run` (the client is closed there)."""

    async def _close_client(self, client: Any) -> None:
        if client is None:
            return
        try:
            await client.disconnect()
            await client.stop()
        except Exception as exc:  # a client that never connected has nothing to close
            logger.debug("whatsapp client close: %s", type(exc).__name__)
