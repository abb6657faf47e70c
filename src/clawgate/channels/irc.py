"""IRC: a small client on asyncio streams; the wire rules live in `irc_protocol.py`.

Why not the `irc` package (jaraco/irc 20.x): its asyncio connection has no SASL (only the
blocking `ServerConnection` has it), logs every raw line it sends at DEBUG (a `PASS` or
`AUTHENTICATE` line would reach the log), raises on a line over 512 bytes instead of
splitting it, has no flood control and writes without awaiting the transport, and brings
eight packages (jaraco.*, tempora, pytz). IRC's wire is a dozen commands; the pure part is
unit-tested, this module only moves lines.

- Connect (TLS by default, verified; `tls_ca_file` for a self-signed server), then the
  registration phase (`RegistrationMachine`): `CAP LS`, `account-tag` and `sasl` when
  offered and wanted, SASL PLAIN or the server password, NICK/USER, 433 -> `nick_`,
  `nick2`, ... (no NickServ). A refused password, SASL login, nick or a ban is
  `AuthFailed`: the account fails once and is not retried (no retry storm).
- Then JOIN the configured channels; every line from the server is a sign of life; after
  `ping_interval_s` of silence a PING goes out, and an unanswered one leaves the
  supervisor to rebuild the connection (`stall_after_s`). While on an alternative nick,
  the configured one is asked for again every interval.
- Inbound PRIVMSGs (DMs, channel messages with `nick:`/`nick,` mention gating, `/me`)
  are handed to the layer; NOTICEs are never answered (IRC's rule against bot loops);
  CTCP VERSION and PING in DMs get a NOTICE answer.
- Outbound text is split into lines that fit 512 bytes with our prefix, paced by a token
  bucket (`flood_burst`, `flood_interval_ms`). A send waits for a registered connection
  (a reconnect in progress) instead of failing at once; lines of a chunk already written
  before a connection dropped are not written again when the layer retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Final

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
    Sender,
    Target,
)
from .irc_protocol import (
    CTCP_MARK,
    Ctcp,
    IrcMessage,
    Refused,
    Registered,
    RegistrationMachine,
    TextMessage,
    TokenBucket,
    classify_privmsg,
    fold,
    format_line,
    message_budget,
    nick_of,
    parse_line,
    split_for_wire,
)

__all__ = ["IrcAdapter", "LineTooLong", "read_message"]

logger = logging.getLogger(__name__)

#: The longest line read (IRCv3 tags may add 8191 bytes to the 512); longer ones are dropped.
READ_LIMIT: Final = 16_384
CONNECT_TIMEOUT_S: Final = 20.0
REGISTER_TIMEOUT_S: Final = 30.0
#: How long a send waits for the connection to come (back) before the layer retries it.
SEND_WAIT_S: Final = 30.0
#: The layer's chunk size; each chunk then becomes as many 512-byte lines as it needs.
MAX_TEXT: Final = 2000
#: A retry of an interrupted chunk within this long resumes after the lines already written.
RESUME_FOR_S: Final = 600.0
VERSION: Final = "clawgate"


class LineTooLong(ChannelError):
    """A line longer than the reader's limit arrived; it was dropped whole."""


async def read_message(reader: asyncio.StreamReader) -> IrcMessage | None:
    """Read one line and parse it (None for an empty or unreadable one).

    A line over the reader's limit is consumed to its end and `LineTooLong` raised, so the
    next read starts at the next line.

    Raises:
        LineTooLong: the line was dropped.
        asyncio.IncompleteReadError: the connection ended.
    """
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
        while True:
            await reader.readexactly(consumed)
            try:
                await reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as more:
                consumed = more.consumed
        raise LineTooLong("line too long") from None
    return parse_line(raw)


class IrcAdapter:
    """One IRC identity on one server."""

    def __init__(
        self,
        account: AccountConfig,
        link: AccountLink,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        options = account.options
        self._account = account
        self._link = link
        self._monotonic = monotonic
        self._server: str = options["server"]
        self._port: int = options["port"]
        self._tls: bool = options["tls"]
        self._nick: str = options["nick"]
        self._ping_every: float = float(options["ping_interval_s"])
        self._flood = (int(options["flood_burst"]), options["flood_interval_ms"] / 1000)
        self._channels: list[str] = list(options["channels"])
        password = account.secret
        self._sasl = (options["sasl_username"], password) if options["sasl"] else None
        if self._sasl is not None and not password:
            raise AuthFailed(
                f"{account.key} has sasl = true but no password ({account.secret_source})"
            )
        self._machine_args = {
            "username": options["username"],
            "realname": options["realname"],
            "password": password,
            "sasl": self._sasl,
        }
        self._ssl = self._ssl_context(options) if self._tls else None
        self.capabilities = Capabilities(
            dm=True,
            groups=True,
            max_text=MAX_TEXT,
            stall_after_s=2 * self._ping_every + 10,
        )
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._bucket = TokenBucket(self._flood[0], self._flood[1], monotonic())
        self._me = self._nick
        self._me_source: str | None = None
        self._epoch = 0
        self._seq = 0
        # (target, text) of a chunk a dropped connection interrupted -> (lines written, when):
        # the layer's retry of that chunk resumes after them instead of repeating them.
        self._written: dict[tuple[str, str], tuple[int, float]] = {}
        self._log = logging.LoggerAdapter(logger, {"account": account.key})

    def _ssl_context(self, options: dict[str, object]) -> ssl.SSLContext:
        ca_file = options.get("tls_ca_file")
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise AuthFailed(
                f"{self._account.key}: cannot read tls_ca_file {ca_file}: {exc}"
            ) from None
        if not options.get("tls_verify", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- receiving ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, register, join, and read until cancelled or the connection ends."""
        reader, writer = await self._connect()
        self._writer = writer
        try:
            await self._register(reader)
            self._epoch = int(time.time() * 1000)
            self._seq = 0
            if self._channels:
                await self._control(format_line("JOIN", ",".join(self._channels)))
            self._ready.set()
            self._link.connected()
            if fold(self._me) != fold(self._nick):  # shown in status until it is taken back
                self._link.error(f"nick {self._nick} is taken; using {self._me}")
            await self._read_loop(reader)
        finally:
            self._ready.clear()
            self._writer = None
            if not writer.is_closing():
                # Say goodbye, so the server frees the nick now rather than at its ping timeout.
                with contextlib.suppress(Exception):
                    writer.write(format_line("QUIT", "clawgate stopping"))
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = f"{self._server}:{self._port}"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await asyncio.open_connection(
                    self._server,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server if self._ssl is not None else None,
                    limit=READ_LIMIT,
                )
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(
                f"the TLS certificate of {where} is not trusted ({exc.verify_message});"
                " set tls_ca_file for a self-signed server"
            ) from None
        except TimeoutError:
            raise ChannelError(f"connecting to {where} timed out") from None
        except OSError as exc:
            raise ChannelError(f"cannot connect to {where}: {exc.strerror or exc}") from None

    async def _register(self, reader: asyncio.StreamReader) -> None:
        machine = RegistrationMachine(self._nick, **self._machine_args)
        for line in machine.start():
            await self._control(line)
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT_S):
                while machine.outcome is None:
                    message = await self._read(reader)
                    if message is None:
                        continue
                    self._link.progress()
                    if message.command == "PING":
                        await self._pong(message)
                    for line in machine.feed(message):
                        await self._control(line)
        except TimeoutError:
            raise ChannelError(f"{self._server} did not finish registration in time") from None
        outcome = machine.outcome
        if isinstance(outcome, Refused):
            if outcome.auth:
                raise AuthFailed(f"{self._account.key}: {outcome.reason}")
            raise ChannelError(outcome.reason)
        assert isinstance(outcome, Registered)
        self._me, self._me_source = outcome.nick, outcome.source
        self._log.info(
            "registered on %s as %s (account-tag %s)",
            self._server,
            outcome.nick,
            "on" if outcome.account_tag else "off",
        )

    async def _read(self, reader: asyncio.StreamReader) -> IrcMessage | None:
        """Return the next line parsed (None for one to skip); raise when the link ends."""
        try:
            return await read_message(reader)
        except LineTooLong:
            self._link.error("a line longer than 16 KiB from the server was dropped")
            return None
        except asyncio.IncompleteReadError:
            raise ChannelError(f"{self._server} closed the connection") from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise ChannelError(f"the connection to {self._server} broke: {exc}") from None

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                async with asyncio.timeout(self._ping_every):
                    message = await self._read(reader)
            except TimeoutError:
                # Silence: ask for a sign of life; the supervisor acts if none comes.
                await self._control(format_line("PING", f"clawgate-{int(self._monotonic())}"))
                if fold(self._me) != fold(self._nick):
                    await self._control(format_line("NICK", self._nick))
                continue
            self._link.progress()
            if message is not None:
                await self._dispatch(message)

    async def _dispatch(self, message: IrcMessage) -> None:
        command = message.command
        if command == "PING":
            await self._pong(message)
        elif command == "PRIVMSG":
            await self._privmsg(message)
        elif command == "NICK" and message.params:
            await self._nick_change(message)
        elif command == "QUIT" and fold(nick_of(message.source)) == fold(self._nick):
            await self._control(format_line("NICK", self._nick))  # our nick is free again
        elif command == "JOIN" and fold(nick_of(message.source)) == fold(self._me):
            self._me_source = message.source or self._me_source
        elif command == "KICK" and len(message.params) >= 2:
            if fold(message.params[1]) == fold(self._me):
                self._link.error(f"kicked from {message.params[0]}; joining again")
                await self._control(format_line("JOIN", message.params[0]))
        elif command in ("471", "473", "474", "475", "403") and len(message.params) >= 2:
            self._link.error(f"cannot join {message.params[1]}: {message.params[-1]}")
        elif command == "ERROR":
            text = message.params[-1] if message.params else ""
            raise ChannelError(f"{self._server} closed the link: {text}")

    async def _nick_change(self, message: IrcMessage) -> None:
        old, new = nick_of(message.source), message.params[0]
        if fold(old) == fold(self._me):
            self._me = new
            if self._me_source is not None:
                self._me_source = new + self._me_source[len(old) :]
        elif fold(old) == fold(self._nick) and fold(self._me) != fold(self._nick):
            await self._control(format_line("NICK", self._nick))

    async def _pong(self, message: IrcMessage) -> None:
        await self._control(format_line("PONG", message.params[-1] if message.params else ""))

    async def _privmsg(self, message: IrcMessage) -> None:
        seen = classify_privmsg(message, self._me)
        if isinstance(seen, Ctcp):
            await self._answer_ctcp(seen)
            return
        if seen is None or not seen.text.strip():
            return
        await self._link.deliver(self._inbound(seen, message))

    def _inbound(self, seen: TextMessage, message: IrcMessage) -> InboundMessage:
        self._seq += 1
        # IRC does not redeliver; the IRCv3 msgid names a message where the server has it.
        unique = message.tags.get("msgid") or f"{self._epoch}.{self._seq}"
        kind = ChatKind.DM if seen.is_dm else ChatKind.GROUP
        return InboundMessage(
            channel=self._account.channel,
            account_id=self._account.account_id,
            # The nick rides along so a reply in a channel can address its sender.
            message_id=f"{unique}/{seen.sender_nick}",
            sender=Sender(seen.sender_id, seen.sender_nick),
            chat=ChatRef(seen.chat_id, kind, "" if seen.is_dm else seen.chat_id),
            text=seen.text,
            received_at=int(time.time() * 1000),
            mentioned=seen.mentioned,
        )

    async def _answer_ctcp(self, request: Ctcp) -> None:
        if request.command == "VERSION":
            body = f"{CTCP_MARK}VERSION {VERSION}{CTCP_MARK}"
        elif request.command == "PING":
            body = f"{CTCP_MARK}PING {request.argument[:64]}{CTCP_MARK}"
        else:
            return
        async with self._send_lock:
            await self._paced([format_line("NOTICE", request.sender_nick, body)])

    # -- sending --------------------------------------------------------------------

    async def _control(self, line: bytes) -> None:
        """Write a protocol line now (PONG, NICK, JOIN, CAP): not paced, never queued."""
        writer = self._writer
        if writer is None:
            raise ChannelError("not connected")
        writer.write(line)
        await writer.drain()

    async def _paced(self, lines: list[bytes]) -> int:
        """Write the first of `lines` once flood control allows it, with each next one it
        allows at once, in one write; return how many were written.

        One write, not one per line: a server relays each line as it reads it, and a line
        read on its own behind one still unacknowledged waits for the reader's delayed ACK
        (40 ms on Linux) before it is sent on.
        """
        wait = self._bucket.take(self._monotonic())
        if wait > 0:  # the bucket refills with time alone; nothing to wait on but the clock
            await asyncio.sleep(wait)
            self._bucket.take(self._monotonic())
        count = 1
        while count < len(lines) and self._bucket.take(self._monotonic()) == 0:
            count += 1
        await self._control(b"".join(lines[:count]))
        return count

    async def _connection(self) -> None:
        if self._ready.is_set():
            return
        try:
            async with asyncio.timeout(SEND_WAIT_S):
                await self._ready.wait()
        except TimeoutError:
            raise ChannelError(f"not connected to {self._server}") from None

    async def send_text(self, target: Target, text: str) -> str:
        """Send one chunk as PRIVMSG lines of at most 512 bytes each; return a local id."""
        to = target.chat_id.strip()
        if not to or " " in to or "," in to:
            raise PermanentSendError(f"{target.chat_id!r} is not an IRC nick or channel")
        reply_nick = (target.reply_to or "").rpartition("/")[2]
        if reply_nick and to[0] in "#&+!":
            text = f"{reply_nick}: {text}"
        async with self._send_lock:
            await self._connection()
            budget = message_budget(to, self._me_source, self._me)
            lines = split_for_wire(text, budget)
            key = (to, text)
            done, at = self._written.pop(key, (0, 0.0))
            if self._monotonic() - at > RESUME_FOR_S:  # not a retry: send it whole
                done = 0
            wire = [format_line("PRIVMSG", to, body) for body in lines]
            index = done
            while index < len(wire):
                try:
                    index += await self._paced(wire[index:])
                except (ChannelError, ConnectionError) as exc:
                    if index:
                        self._written[key] = (index, self._monotonic())
                        if len(self._written) > 100:
                            self._written.pop(next(iter(self._written)))
                    raise ChannelError(f"the connection dropped while sending: {exc}") from None
            self._seq += 1
            return f"{self._epoch}.{self._seq}"

    async def send_media(self, target: Target, media: OutboundMedia) -> str:
        """IRC has no media (the capability says so)."""
        raise PermanentSendError("IRC cannot send files")

    async def typing(self, target: Target) -> None:
        """IRC has no typing indicator in the base protocol."""

    async def logout(self) -> None:
        """Say QUIT when connected (IRC sessions hold nothing to drop)."""
        if self._writer is not None and self._ready.is_set():
            with contextlib.suppress(Exception):
                await self._control(format_line("QUIT", "logged out"))

    async def close(self) -> None:
        """Nothing outlives `run` (its connection closes with it)."""
