"""The heartbeat's rules: its settings, active hours, and what a reply means (pure).

A heartbeat is the agent's own periodic turn (spec §10.1). A reply that is only the
acknowledgement token (default `HEARTBEAT_OK`, surrounding whitespace, markdown emphasis and
a final full stop allowed) means "nothing to report" and is not delivered; an empty reply
is not delivered either; anything else goes to the target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from typing import Final

from .delivery import WEBCHAT, DeliveryTarget

__all__ = [
    "DEFAULT_ACK_TOKEN",
    "DEFAULT_PROMPT",
    "ActiveHours",
    "HeartbeatSettings",
    "ReplyKind",
    "classify_reply",
]

DEFAULT_ACK_TOKEN: Final = "HEARTBEAT_OK"
#: The main session's key: where heartbeat replies go unless `[heartbeat] target` says otherwise.
MAIN_KEY: Final = "agent:main:main"
DEFAULT_PROMPT: Final = (
    "Heartbeat: check whether anything needs the user's attention now (open tasks, queued "
    "system events below). If something does, write the message to send them. If nothing "
    "does, reply with exactly {token}."
)
_WINDOW: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
#: Markup an agent may wrap the token in: `**HEARTBEAT_OK**`, `HEARTBEAT_OK.`
_WRAPPING: Final = " \t\r\n*_`'\".!"


@dataclass(frozen=True, slots=True)
class ActiveHours:
    """A daily window of wall-clock time, e.g. 08:00-22:00; it may span midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> ActiveHours:
        """Read `HH:MM-HH:MM` (24:00 allowed as an end).

        Raises:
            ValueError: not such a window; the message shows the form.
        """
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a window; write HH:MM-HH:MM, e.g. 08:00-22:00")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(f"{text!r} has a time out of range; hours 00-24, minutes 00-59")
        start = time(h1, m1)
        end = time(0, 0) if h2 == 24 else time(h2, m2)
        if start == end and h2 != 24:
            raise ValueError(f"{text!r} is empty; omit active_hours to beat around the clock")
        return cls(start, end)

    def contains(self, wall: time) -> bool:
        """Whether a wall-clock time falls in the window (start included, end excluded)."""
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end  # spans midnight (or is 00:00-24:00)

    def __str__(self) -> str:
        end = "24:00" if self.end == time(0, 0) else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    """The `[heartbeat]` settings, resolved."""

    every_s: int = 1800  # 0: no scheduled beats (a `wake` still runs one)
    active_hours: ActiveHours | None = None
    prompt: str | None = None  # None: HEARTBEAT.md in the workspace, else DEFAULT_PROMPT
    target: DeliveryTarget = field(default_factory=lambda: DeliveryTarget(WEBCHAT, MAIN_KEY))
    ack_token: str = DEFAULT_ACK_TOKEN


class ReplyKind(StrEnum):
    """What a heartbeat reply means."""

    EMPTY = "ok-empty"
    TOKEN = "ok-token"
    MESSAGE = "message"


def classify_reply(text: str, token: str) -> ReplyKind:
    """Return whether a reply is empty, only the acknowledgement token, or a message."""
    stripped = text.strip()
    if not stripped:
        return ReplyKind.EMPTY
    if stripped.strip(_WRAPPING) == token:
        return ReplyKind.TOKEN
    return ReplyKind.MESSAGE
