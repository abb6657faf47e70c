"""Who may reach the agent through a channel: access decisions and DM pairing codes (pure).

Closed by default: a direct message from a sender who is neither in `allow_from` nor
approved never reaches the agent. Under `dm_policy = "pairing"` the sender gets one
pairing code (8 upper-case letters and digits, valid 1 h, at most 3 pending per account);
an operator approves it (`clawgate pairing approve CHANNEL CODE`) and the sender is allowed
from then on. Groups answer only when allowed and, by default, mentioned.

No I/O and no clock here: the caller passes `now` and a code source, persists what
`PairingBook` decides, and only then applies it (see `channels/pipeline.py`).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from .base import AccountConfig, ChatKind, InboundMessage

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "PAIRING_MAX_PENDING",
    "PAIRING_TTL_MS",
    "REFUSAL_LOG_INTERVAL_MS",
    "Decision",
    "PairingBook",
    "PairingCode",
    "PairingRequest",
    "RefusalLog",
    "Verdict",
    "decide_access",
    "random_code",
]

CODE_ALPHABET: Final = string.ascii_uppercase + string.digits
CODE_LENGTH: Final = 8
PAIRING_TTL_MS: Final = 3_600_000
PAIRING_MAX_PENDING: Final = 3
REFUSAL_LOG_INTERVAL_MS: Final = 3_600_000
WILDCARD: Final = "*"


class Verdict(StrEnum):
    """What happens to an inbound message after the access check."""

    ADMIT = "admit"  # on to the agent
    PAIR = "pair"  # unknown DM sender under `pairing`: answer with a code, nothing else
    REFUSE = "refuse"  # dropped; logged once per sender per hour
    IGNORE = "ignore"  # an allowed group message that does not mention the bot


@dataclass(frozen=True, slots=True)
class Decision:
    """An access verdict and why (the reason is logged, never the text)."""

    verdict: Verdict
    reason: str


def decide_access(
    message: InboundMessage, account: AccountConfig, approved: Collection[str]
) -> Decision:
    """Decide whether `message` may reach the agent (order: policy, allow lists, mention)."""
    if message.chat.kind is ChatKind.DM:
        policy = account.dm_policy
        if policy == "disabled":
            return Decision(Verdict.REFUSE, "direct messages are disabled")
        if policy == "open":
            return Decision(Verdict.ADMIT, "dm_policy open")
        allowed = account.allow_from
        if WILDCARD in allowed or message.sender.id in allowed or message.sender.id in approved:
            return Decision(Verdict.ADMIT, "allowed sender")
        if policy == "pairing":
            return Decision(Verdict.PAIR, "unknown sender; pairing code offered")
        return Decision(Verdict.REFUSE, "sender not in allow_from")
    policy = account.group_policy
    if policy == "disabled":
        return Decision(Verdict.REFUSE, "group messages are disabled")
    if policy == "allowlist" and not (
        WILDCARD in account.groups or message.chat.id in account.groups
    ):
        return Decision(Verdict.REFUSE, "group not in groups")
    if account.require_mention and not message.mentioned:
        return Decision(Verdict.IGNORE, "not mentioned")
    return Decision(Verdict.ADMIT, "allowed group")


def random_code() -> str:
    """Return a fresh pairing code from the OS's random source."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


@dataclass(frozen=True, slots=True)
class PairingCode:
    """One pending pairing code: who asked, where, and until when it is valid."""

    channel: str
    account_id: str
    code: str
    sender_id: str
    sender_name: str
    chat_id: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class PairingRequest:
    """What asking for a code gave: a new code to send, the sender's open one, or nothing."""

    code: PairingCode | None
    new: bool
    reason: str


class PairingBook:
    """Pending pairing codes of every channel account."""

    def __init__(
        self,
        codes: Iterable[PairingCode] = (),
        *,
        ttl_ms: int = PAIRING_TTL_MS,
        max_pending: int = PAIRING_MAX_PENDING,
        new_code: Callable[[], str] = random_code,
    ) -> None:
        self._codes: dict[tuple[str, str], PairingCode] = {(c.channel, c.code): c for c in codes}
        self._ttl_ms = ttl_ms
        self._max_pending = max_pending
        self._new_code = new_code

    def pending(self, now: int) -> list[PairingCode]:
        """Return the unexpired codes, oldest first."""
        live = [c for c in self._codes.values() if c.expires_at > now]
        return sorted(live, key=lambda c: (c.created_at, c.channel, c.code))

    def expired(self, now: int) -> list[PairingCode]:
        """Return the codes past their expiry (to delete from the store)."""
        return [c for c in self._codes.values() if c.expires_at <= now]

    def propose(self, message: InboundMessage, now: int) -> PairingRequest:
        """Decide the answer to an unknown sender's DM; `add` it once persisted."""
        mine = [
            c
            for c in self.pending(now)
            if (c.channel, c.account_id) == (message.channel, message.account_id)
        ]
        for code in mine:
            if code.sender_id == message.sender.id:
                return PairingRequest(code, False, "pairing code already sent")
        if len(mine) >= self._max_pending:
            return PairingRequest(None, False, "too many pending pairing codes")
        taken = {c for (_, c) in self._codes}
        value = self._new_code()
        while value in taken:
            value = self._new_code()
        code = PairingCode(
            channel=message.channel,
            account_id=message.account_id,
            code=value,
            sender_id=message.sender.id,
            sender_name=message.sender.name,
            chat_id=message.chat.id,
            created_at=now,
            expires_at=now + self._ttl_ms,
        )
        return PairingRequest(code, True, "pairing code sent")

    def add(self, code: PairingCode) -> None:
        """Record a code that was persisted."""
        self._codes[(code.channel, code.code)] = code

    def find(self, channel: str, code: str, now: int) -> PairingCode | None:
        """Return the unexpired code `code` of `channel` (case-insensitive), or None."""
        found = self._codes.get((channel, code.strip().upper()))
        return found if found is not None and found.expires_at > now else None

    def remove(self, codes: Iterable[PairingCode]) -> None:
        """Forget codes (approved, rejected or expired, once the store forgot them)."""
        for code in codes:
            self._codes.pop((code.channel, code.code), None)

    def for_sender(self, channel: str, account_id: str, sender_id: str) -> list[PairingCode]:
        """Return every code a sender holds on an account (dropped when it is approved)."""
        return [
            c
            for c in self._codes.values()
            if (c.channel, c.account_id, c.sender_id) == (channel, account_id, sender_id)
        ]


class RefusalLog:
    """Say whether a refusal should be logged: once per (account, sender) per hour."""

    def __init__(self, interval_ms: int = REFUSAL_LOG_INTERVAL_MS) -> None:
        self._interval_ms = interval_ms
        self._last: dict[tuple[str, str, str], int] = {}

    def should_log(self, channel: str, account_id: str, sender_id: str, now: int) -> bool:
        """Return True at most once per interval for one sender of one account."""
        key = (channel, account_id, sender_id)
        last = self._last.get(key)
        if last is not None and now - last < self._interval_ms:
            return False
        if len(self._last) > 10_000:  # a flood of distinct strangers must not grow this forever
            cutoff = now - self._interval_ms
            self._last = {k: t for k, t in self._last.items() if t > cutoff}
        self._last[key] = now
        return True
