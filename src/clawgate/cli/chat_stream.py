"""What `clawgate chat` prints for one run's `chat` events: pure, no I/O.

`ReplyPrinter.feed(payload)` takes the run's `chat` event payloads in order and returns the
text to write now: the new part of each delta (protocol 4 `deltaText`, or the growth of
the whole text on protocol 3), then what the final message adds, so the printed text ends
equal to the final reply. A delta that rewrites the text (`replace`) starts a new line with
the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ReplyPrinter", "RunEnded", "message_text"]


def message_text(payload: dict[str, Any]) -> str:
    """Return the text of a `chat` payload's assistant message ("" without one)."""
    message = payload.get("message")
    if not isinstance(message, dict):
        return ""
    parts = message.get("content")
    if not isinstance(parts, list):
        return ""
    return "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


@dataclass(frozen=True, slots=True)
class RunEnded:
    """The run's terminal `chat` state: `final`, `aborted` or `error` (with its message)."""

    state: str
    text: str
    error: str | None = None


class ReplyPrinter:
    """Turns one run's `chat` events into the text to print, piece by piece."""

    def __init__(self) -> None:
        self._shown = ""
        self.ended: RunEnded | None = None

    def feed(self, payload: dict[str, Any]) -> str:
        """Return what to print for this event; sets `ended` on the terminal one."""
        state = payload.get("state")
        if state == "delta":
            return self._delta(payload)
        text = message_text(payload)
        if state == "final":
            self.ended = RunEnded("final", text)
            return self._extend_to(text) + "\n"
        if state == "aborted":
            self.ended = RunEnded("aborted", self._shown)
            return "\n" if self._shown else ""
        self.ended = RunEnded("error", self._shown, str(payload.get("errorMessage") or "failed"))
        return "\n" if self._shown else ""

    def _delta(self, payload: dict[str, Any]) -> str:
        piece = payload.get("deltaText")
        if isinstance(piece, str):
            if payload.get("replace"):
                return self._restart(piece)
            self._shown += piece
            return piece
        return self._extend_to(message_text(payload))  # protocol 3: the whole text so far

    def _extend_to(self, text: str) -> str:
        if text.startswith(self._shown):
            piece = text[len(self._shown) :]
            self._shown = text
            return piece
        return self._restart(text)

    def _restart(self, text: str) -> str:
        prefix = "\n" if self._shown else ""
        self._shown = text
        return prefix + text
