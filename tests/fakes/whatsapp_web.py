"""WhatsApp Web's side of a linked device, as neonize's client presents it to Python.

WhatsApp's servers cannot be reached from a test machine, and whatsmeow (Go) speaks to them
only. This stand-in replaces `neonize.aioze.client.NewAClient` at the gateway's import of it
and keeps everything from the Go callback onward real: events are neonize's own protobuf
types, serialized to bytes and dispatched by neonize's own `Event.execute` (the function
whatsmeow's callback calls), QR codes go through the client's `event._qr` as in neonize.

The test plays WhatsApp and the phone: `show_qr`, `scan`, `says` (a message from a person,
in a DM or a group), `drop`/`restore` (the socket), `log_out`, `replace` (another client
took the session); and reads what the gateway sent (`sent`, `typing`).
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
from dataclasses import dataclass
from typing import Any

import neonize.aioze.events as neonize_events
from google.protobuf.message import Message as Proto
from neonize.aioze.events import (
    ConnectedEv,
    DisconnectedEv,
    Event,
    KeepAliveRestoredEv,
    LoggedOutEv,
    MessageEv,
    StreamReplacedEv,
)
from neonize.events import EVENT_TO_INT
from neonize.exc import SendMessageError
from neonize.proto.Neonize_pb2 import (
    JID,
    Device,
    MessageInfo,
    MessageSource,
    SendResponse,
)
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContextInfo,
    ExtendedTextMessage,
    Message,
)

__all__ = ["BOT_NUMBER", "FakeWhatsAppWeb", "SentMessage"]

BOT_NUMBER = "15550001111"


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the gateway sent: the chat, its text and the message it quotes."""

    chat: str
    text: str
    quoted: str | None
    id: str


def _jid(text: str) -> JID:
    user, _, server = text.partition("@")
    return JID(User=user, Server=server or "s.whatsapp.net", IsEmpty=False)


def _complete(message: Proto) -> Proto:
    """Fill every required field left unset with its default, as neonize's Go side does.

    neonize's events are proto2 messages with required fields, which whatsmeow's bridge always
    sets (zero values included); a test names only the fields it cares about.
    """
    while errors := message.FindInitializationErrors():
        for path in errors:
            *parents, name = path.split(".")
            target: Any = message
            for part in parents:
                field_name, _, index = part.partition("[")
                target = getattr(target, field_name)
                if index:
                    target = target[int(index.rstrip("]"))]
            field = target.DESCRIPTOR.fields_by_name[name]
            if field.message_type is not None:
                getattr(target, name).SetInParent()
            else:
                setattr(target, name, field.default_value)
    return message


class FakeWhatsAppWeb:
    """WhatsApp and the phone, for every client the gateway creates (see module docstring)."""

    def __init__(self, number: str = BOT_NUMBER) -> None:
        self.number = number
        self.clients: list[_Client] = []
        self.linked: set[str] = set()  # session paths that hold a linked device
        self.sent: list[SentMessage] = []
        self.typing: list[str] = []
        self.send_failures = 0
        self._ids = itertools.count(1)

    def client_class(self) -> type:
        """A class to stand in for `NewAClient`, bound to this WhatsApp."""
        world = self

        class BoundClient(_Client):
            def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
                super().__init__(world, name)

        return BoundClient

    @property
    def client(self) -> _Client:
        """The client the gateway created last."""
        assert self.clients, "the gateway created no WhatsApp client yet"
        return self.clients[-1]

    # -- the phone and WhatsApp ----------------------------------------------------

    def show_qr(self, code: str) -> None:
        """WhatsApp offers a (new) QR code to the unlinked client."""
        self.client.offer_qr(code.encode())

    def scan(self) -> None:
        """The phone scans the code: the device is linked and connects."""
        client = self.client
        self.linked.add(client.name)
        client.come_up()

    def says(
        self,
        text: str,
        *,
        sender: str = "15557770000",
        group: str | None = None,
        mention_bot: bool = False,
        reply_to: str | None = None,
        message_id: str | None = None,
        push_name: str = "Alice",
    ) -> str:
        """A person sends `text` (in a DM, or in `group`); return its message id."""
        message_id = message_id or f"3EB0{next(self._ids):08X}"
        sender_jid = f"{sender}@s.whatsapp.net"
        chat = group if group is not None else sender_jid
        mentions = [f"{self.number}@s.whatsapp.net"] if mention_bot else []
        if mentions or reply_to:
            body = Message(
                extendedTextMessage=ExtendedTextMessage(
                    text=text,
                    contextInfo=ContextInfo(
                        mentionedJID=mentions,
                        stanzaID=reply_to or "",
                        participant=f"{self.number}@s.whatsapp.net" if reply_to else "",
                    ),
                )
            )
        else:
            body = Message(conversation=text)
        event = MessageEv(
            Info=MessageInfo(
                MessageSource=MessageSource(
                    Chat=_jid(chat), Sender=_jid(sender_jid), IsFromMe=False, IsGroup=bool(group)
                ),
                ID=message_id,
                Pushname=push_name,
                Timestamp=1_765_000_000,
                Type="text",
            ),
            Message=body,
        )
        self.client.dispatch(event)
        return message_id

    def deliver(self, event: Proto) -> None:
        """Dispatch any neonize event to the current client."""
        self.client.dispatch(event)

    def drop(self) -> None:
        """The socket drops (whatsmeow reports it and reconnects by itself)."""
        self.client.dispatch(DisconnectedEv(status=True))

    def restore(self) -> None:
        """whatsmeow's keepalive is answered again."""
        self.client.dispatch(KeepAliveRestoredEv())

    def log_out(self) -> None:
        """The phone removes this linked device."""
        self.linked.discard(self.client.name)
        self.client.dispatch(LoggedOutEv(OnConnect=False))

    def replace(self) -> None:
        """Another client opened the same session."""
        self.client.dispatch(StreamReplacedEv())

    def next_id(self) -> str:
        """A new message id, as WhatsApp assigns them."""
        return f"3EB1{next(self._ids):08X}"


class _Client:
    """What the gateway sees of `NewAClient`: its event registry, connect and sends."""

    def __init__(self, world: FakeWhatsAppWeb, name: str) -> None:
        self.world = world
        self.name = name
        self.event = Event(self)  # type: ignore[arg-type]  # neonize's own dispatcher
        self.me: Device | None = None
        self.connected = False
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        world.clients.append(self)

    async def connect(self) -> asyncio.Task[None]:
        """Start the session: linked ones connect, others wait for `show_qr`/`scan`."""
        self._loop = asyncio.get_running_loop()
        # neonize keeps the first loop it saw; each test has its own.
        neonize_events.event_global_loop = self._loop
        self._stopped = asyncio.Event()
        task = self._loop.create_task(self._stopped.wait())
        if self.name in self.world.linked:
            self.come_up()
        return task  # type: ignore[return-value]

    def come_up(self) -> None:
        """Connected: neonize reports our device first, then `Connected`."""
        self.dispatch(Device(JID=_jid(f"{self.world.number}@s.whatsapp.net"), PushName="bot"))
        self.dispatch(ConnectedEv(status=True))

    def offer_qr(self, code: bytes) -> None:
        assert self._loop is not None
        self._loop.create_task(self.event._qr(self, code))  # type: ignore[arg-type]

    def dispatch(self, event: Proto) -> None:
        """Hand an event to neonize's dispatcher as whatsmeow's callback does: as bytes."""
        data = _complete(event).SerializeToString()
        buffer = ctypes.create_string_buffer(data, len(data) or 1)
        self.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])

    async def send_message(self, to: JID, message: Message | str) -> SendResponse:
        if self.world.send_failures > 0:
            self.world.send_failures -= 1
            raise SendMessageError("server returned error 500")
        if isinstance(message, str):
            text, quoted = message, None
        else:
            text = message.extendedTextMessage.text or message.conversation
            quoted = message.extendedTextMessage.contextInfo.stanzaID or None
        message_id = self.world.next_id()
        self.world.sent.append(SentMessage(f"{to.User}@{to.Server}", text, quoted, message_id))
        return _complete(SendResponse(ID=message_id, Timestamp=1_765_000_001))

    async def send_chat_presence(self, jid: JID, state: Any, media: Any) -> None:
        self.world.typing.append(f"{jid.User}@{jid.Server}")

    async def download_any(self, message: Message) -> bytes:
        return b"\x89PNG fake image bytes"

    async def logout(self) -> None:
        self.world.linked.discard(self.name)

    async def disconnect(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    async def stop(self) -> None:
        await self.disconnect()
