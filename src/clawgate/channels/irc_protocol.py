"""IRC's wire rules for the IRC channel (pure: no sockets, no clock; times are passed in).

- `parse_line` / `format_line`: RFC 1459/2812 lines with IRCv3 message tags.
- `RegistrationMachine`: the connection's first phase, from `CAP LS` to `001`: capability
  negotiation (`sasl`, `account-tag`), SASL PLAIN, the server password, and nick collision
  handling without NickServ (433 -> the next alternative nick). It is fed parsed lines and
  answers with lines to send and, once, `Registered` or `Refused`.
- `split_for_wire`: a reply as PRIVMSG bodies that fit one 512-byte line each (newlines
  become separate lines, cuts never fall inside a UTF-8 sequence, spaces are preferred).
- `classify_privmsg`: a PRIVMSG as the channel layer sees it (DM or channel, sender id,
  mention, CTCP).
- `TokenBucket`: flood control for outbound lines.

Sender ids: `account:<name>` when the server tagged the message with the sender's services
account (IRCv3 `account-tag`), else the nick lower-cased (ASCII only, so two different
users never share an id even on servers with RFC 1459 case mapping).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

__all__ = [
    "CTCP_MARK",
    "MAX_LINE",
    "Ctcp",
    "IrcMessage",
    "Refused",
    "Registered",
    "RegistrationMachine",
    "TextMessage",
    "TokenBucket",
    "addressed",
    "alternative_nick",
    "classify_privmsg",
    "fold",
    "format_line",
    "message_budget",
    "nick_of",
    "parse_line",
    "sasl_plain",
    "split_for_wire",
]

#: One IRC line, CR LF included (RFC 1459 §2.3), not counting IRCv3 tags.
MAX_LINE: Final = 512
CTCP_MARK: Final = "\x01"
# Capabilities asked for when the server offers them.
WANTED_CAPS: Final = frozenset({"account-tag"})
# SASL AUTHENTICATE payloads are sent in pieces of at most this many bytes.
SASL_CHUNK: Final = 400
# Until the server says otherwise (ISUPPORT NICKLEN), alternatives fit RFC 2812's limit.
DEFAULT_NICKLEN: Final = 9
# Conservative length of the `user@host` others see in front of our messages.
_UNKNOWN_USER: Final = "~" + "u" * 9
_UNKNOWN_HOST: Final = "h" * 63
_TAG_ESCAPES: Final = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_SASL_FAILED: Final = frozenset({"902", "904", "905", "906", "908"})


@dataclass(frozen=True, slots=True)
class IrcMessage:
    """One parsed line: tags, source (`nick!user@host` or a server), command, parameters."""

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _unescape_tag(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_TAG_ESCAPES.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def parse_line(raw: bytes) -> IrcMessage | None:
    """Parse one line (CR LF optional); return None for an empty or unreadable line.

    Text is UTF-8; a line that is not valid UTF-8 is read as Latin-1, as older clients send.
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        line = raw.decode("latin-1")
    line = line.rstrip("\r\n").replace("\x00", "")
    tags: dict[str, str] = {}
    if line.startswith("@"):
        head, _, line = line.partition(" ")
        for item in head[1:].split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = _unescape_tag(value)
        line = line.lstrip(" ")
    source = None
    if line.startswith(":"):
        head, _, line = line.partition(" ")
        source = head[1:] or None
        line = line.lstrip(" ")
    trailing = None
    if " :" in line:
        line, trailing = line.split(" :", 1)
    elif line.startswith(":"):
        line, trailing = "", line[1:]
    words = line.split()
    if not words:
        return None
    params = words[1:] + ([trailing] if trailing is not None else [])
    return IrcMessage(words[0].upper(), tuple(params), source, tags)


def format_line(command: str, *params: str) -> bytes:
    """Return one line to send, CR LF included.

    Raises:
        ValueError: a parameter holds CR, LF or NUL, or a middle one a space or a leading
            colon (it would change the line's meaning).
    """
    parts = [command]
    for index, param in enumerate(params):
        if any(c in param for c in "\r\n\x00"):
            raise ValueError("an IRC parameter cannot hold CR, LF or NUL")
        last = index == len(params) - 1
        if last and (not param or " " in param or param.startswith(":")):
            parts.append(":" + param)
        elif " " in param or not param or param.startswith(":"):
            raise ValueError(f"middle IRC parameter {param!r} is not a single word")
        else:
            parts.append(param)
    return (" ".join(parts) + "\r\n").encode("utf-8")


def nick_of(source: str | None) -> str:
    """Return the nick of a `nick!user@host` source (a server name stays as it is)."""
    return (source or "").split("!", 1)[0]


def fold(name: str) -> str:
    """Return `name` folded for comparison: ASCII lower case (never merges two users)."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


# -- registration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """The server welcomed us (001) under `nick`; `source` is our `nick!user@host` if known."""

    nick: str
    source: str | None
    account_tag: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """Registration failed; `auth` when retrying with the same settings cannot succeed."""

    reason: str
    auth: bool


class Phase(StrEnum):
    """Where registration is."""

    CAPS = "caps"  # waiting for CAP LS / ACK / NAK
    SASL = "sasl"  # AUTHENTICATE exchange
    WELCOME = "welcome"  # CAP END sent (or no CAP support): waiting for 001
    DONE = "done"


def sasl_plain(authcid: str, password: str, authzid: str = "") -> list[str]:
    """Return the AUTHENTICATE payloads of SASL PLAIN (RFC 4616), in 400-byte pieces.

    A payload that is an exact multiple of 400 bytes ends with `+`, so the server knows
    it is complete (IRCv3 SASL 3.1).
    """
    encoded = base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode("ascii")
    pieces = [encoded[i : i + SASL_CHUNK] for i in range(0, len(encoded), SASL_CHUNK)]
    if not pieces or len(pieces[-1]) == SASL_CHUNK:
        pieces.append("+")
    return pieces


def alternative_nick(base: str, attempt: int, nicklen: int = DEFAULT_NICKLEN) -> str:
    """Return the nick to try after `attempt` collisions: `base_`, `base2`, `base3`, ...

    Alternatives fit in `max(len(base), nicklen)` characters, so a server that accepted
    the configured nick accepts them too.
    """
    if attempt <= 0:
        return base
    suffix = "_" if attempt == 1 else str(attempt)
    limit = max(len(base), nicklen)
    return base[: limit - len(suffix)] + suffix


class RegistrationMachine:
    """The registration phase of one connection: feed it lines, send what it returns."""

    def __init__(
        self,
        nick: str,
        *,
        username: str,
        realname: str,
        password: str | None = None,
        sasl: tuple[str, str] | None = None,
    ) -> None:
        self.wanted_nick = nick
        self.nick = nick
        self._username = username
        self._realname = realname
        self._password = password
        self._sasl = sasl
        self._attempt = 0
        self._offered: set[str] = set()
        self.acked: set[str] = set()
        self.phase = Phase.CAPS
        self.outcome: Registered | Refused | None = None

    def start(self) -> list[bytes]:
        """Return the opening lines: CAP LS, PASS (server password), NICK, USER."""
        lines = [format_line("CAP", "LS", "302")]
        if self._password is not None and self._sasl is None:
            lines.append(format_line("PASS", self._password))
        lines.append(format_line("NICK", self.nick))
        lines.append(format_line("USER", self._username, "0", "*", self._realname))
        return lines

    def feed(self, message: IrcMessage) -> list[bytes]:
        """Take one line from the server; return the lines to answer with."""
        if self.outcome is not None:
            return []
        command, params = message.command, message.params
        if command == "CAP" and len(params) >= 3:
            return self._cap(params[1].upper(), params[2:])
        if command == "AUTHENTICATE" and params and params[0] == "+" and self._sasl:
            return [format_line("AUTHENTICATE", p) for p in sasl_plain(*self._sasl)]
        if command == "903":
            self.phase = Phase.WELCOME
            return [format_line("CAP", "END")]
        if command in _SASL_FAILED:
            return self._refuse(
                "the server refused the SASL login (check sasl_username and the password)"
            )
        if command == "433" or (command == "432" and self._attempt > 0):
            self._attempt += 1
            self.nick = alternative_nick(self.wanted_nick, self._attempt)
            return [format_line("NICK", self.nick)]
        if command == "432":
            return self._refuse(f"the server does not accept the nick {self.wanted_nick!r}")
        if command == "464":
            return self._refuse("the server refused the password (464)")
        if command == "465":
            return self._refuse("the server has banned this client (465)")
        if command == "ERROR":
            text = params[-1] if params else "closing link"
            auth = "password" in text.lower()
            return self._refuse(f"the server closed the link: {text}", auth=auth)
        if command == "001":
            nick = params[0] if params else self.nick
            self.nick = nick
            welcome = params[-1] if len(params) > 1 else ""
            last = welcome.rsplit(" ", 1)[-1]
            source = last if last.startswith(f"{nick}!") and "@" in last else None
            self.phase = Phase.DONE
            self.outcome = Registered(nick, source, "account-tag" in self.acked)
        return []

    def _cap(self, sub: str, rest: tuple[str, ...]) -> list[bytes]:
        if sub == "LS":
            more = len(rest) > 1 and rest[0] == "*"
            self._offered |= {cap.split("=", 1)[0] for cap in rest[-1].split()}
            if more:
                return []
            wanted = WANTED_CAPS & self._offered
            if self._sasl is not None:
                if "sasl" not in self._offered:
                    return self._refuse("the server offers no SASL; unset sasl or use password")
                wanted |= {"sasl"}
            if not wanted:
                return self._end_caps()
            return [format_line("CAP", "REQ", " ".join(sorted(wanted)))]
        if sub == "ACK":
            self.acked |= set(rest[-1].split())
            if self._sasl is not None and "sasl" in self.acked and self.phase is Phase.CAPS:
                self.phase = Phase.SASL
                return [format_line("AUTHENTICATE", "PLAIN")]
            return self._end_caps()
        if sub == "NAK":
            if self._sasl is not None:
                return self._refuse("the server would not enable SASL")
            return self._end_caps()
        return []

    def _end_caps(self) -> list[bytes]:
        self.phase = Phase.WELCOME
        return [format_line("CAP", "END")]

    def _refuse(self, reason: str, *, auth: bool = True) -> list[bytes]:
        self.outcome = Refused(reason, auth)
        self.phase = Phase.DONE
        return []


# -- messages ----------------------------------------------------------------------------------


def message_budget(target: str, source: str | None, nick: str, command: str = "PRIVMSG") -> int:
    """Return how many bytes of text one `command` to `target` may carry.

    Others receive our line with our `:nick!user@host ` in front, and the whole must fit
    in 512 bytes; when our user@host is not known, a long one is assumed.
    """
    prefix = source or f"{nick}!{_UNKNOWN_USER}@{_UNKNOWN_HOST}"
    overhead = len(f":{prefix} {command} {target} :\r\n".encode())
    return max(MAX_LINE - overhead, 16)


def _cut(encoded: bytes, budget: int) -> int:
    """Return where to cut `encoded` (longer than `budget`): a space, else a char boundary."""
    end = budget
    while end > 0 and (encoded[end] & 0xC0) == 0x80:  # inside a UTF-8 sequence
        end -= 1
    space = encoded.rfind(b" ", 0, end + 1)
    if space > budget // 2:
        return space
    return end or budget


def split_for_wire(text: str, budget: int) -> list[str]:
    """Return `text` as message bodies of at most `budget` UTF-8 bytes each.

    Each line of `text` is sent on its own (IRC has no multi-line messages); empty lines,
    CR and NUL are dropped. A cut never splits a UTF-8 sequence and prefers a space.
    """
    bodies: list[str] = []
    for line in text.replace("\r", "").replace("\x00", "").split("\n"):
        encoded = line.encode("utf-8")
        while len(encoded) > budget:
            at = _cut(encoded, budget)
            head = encoded[:at].rstrip(b" ")
            if head:
                bodies.append(head.decode("utf-8"))
            encoded = encoded[at:].lstrip(b" ")
        if encoded.strip():
            bodies.append(encoded.decode("utf-8"))
    return bodies


def addressed(text: str, nick: str) -> str | None:
    """Return the rest of `text` when it starts `nick: ` or `nick, ` (any case), else None."""
    match = re.match(rf"\s*@?{re.escape(nick)}[:,](?:\s+|$)(.*)", text, re.IGNORECASE | re.DOTALL)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A PRIVMSG for the channel layer."""

    sender_id: str
    sender_nick: str
    chat_id: str  # the sender's nick (DM) or the channel, folded
    is_dm: bool
    text: str
    mentioned: bool


@dataclass(frozen=True, slots=True)
class Ctcp:
    """A CTCP request other than ACTION (VERSION, PING, ...), sent to us directly."""

    sender_nick: str
    command: str
    argument: str


def classify_privmsg(
    message: IrcMessage, my_nick: str, chantypes: str = "#&+!"
) -> TextMessage | Ctcp | None:
    """Return what a PRIVMSG is to the channel layer, or None for what it ignores.

    Ignored: malformed lines, lines without a user source, our own echoes, CTCP requests
    to channels. `/me` (CTCP ACTION) becomes text starting `/me `. In a channel, text that
    starts `<nick>:` or `<nick>,` is a mention and that prefix is removed.
    """
    if message.command != "PRIVMSG" or len(message.params) < 2 or not message.source:
        return None
    if "!" not in message.source and "@" not in message.source:
        return None  # a server notice-like PRIVMSG
    nick = nick_of(message.source)
    if fold(nick) == fold(my_nick):
        return None
    target, text = message.params[0], message.params[-1]
    is_dm = not target or target[0] not in chantypes
    if text.startswith(CTCP_MARK):
        body = text.strip(CTCP_MARK)
        command, _, argument = body.partition(" ")
        if command.upper() == "ACTION":
            text = f"/me {argument}"
        elif is_dm and command:
            return Ctcp(nick, command.upper(), argument)
        else:
            return None
    account = message.tags.get("account")
    sender_id = f"account:{account}" if account and account != "*" else fold(nick)
    mentioned = is_dm
    if not is_dm:
        rest = addressed(text, my_nick)
        if rest is not None:
            mentioned, text = True, rest
    return TextMessage(
        sender_id=sender_id,
        sender_nick=nick,
        chat_id=nick if is_dm else fold(target),
        is_dm=is_dm,
        text=text,
        mentioned=mentioned,
    )


# -- flood control ---------------------------------------------------------------------------


class TokenBucket:
    """Flood control: `burst` lines at once, then one line per `interval_s`."""

    def __init__(self, burst: int, interval_s: float, now: float) -> None:
        self._burst = float(max(burst, 1))
        self._interval = interval_s
        self._tokens = self._burst
        self._at = now

    def take(self, now: float) -> float:
        """Take a token if there is one and return 0; else return how long to wait first."""
        if self._interval > 0:
            elapsed = max(now - self._at, 0.0)
            self._tokens = min(self._burst, self._tokens + elapsed / self._interval)
        else:
            self._tokens = self._burst
        self._at = now
        if self._tokens >= 1 - 1e-9:  # float error must not strand a waiter just short of 1
            self._tokens = max(self._tokens - 1, 0.0)
            return 0.0
        return (1 - self._tokens) * self._interval
