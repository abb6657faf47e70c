"""When a streamed reply is posted, edited in place and continued in a new message (pure).

A channel that edits messages (`capabilities.edits`, account option `stream = "edit"`)
shows an agent's reply while it is written: the first text is posted at once, then the
message is edited as more arrives; text past `max_text` continues in a new message; when
the run ends every message gets a last edit holding its whole text.

Invariants:
- The messages are always `split_text(text, max_text)` of the text so far, so a streamed
  reply ends exactly as the same reply sent at once (same chunks, fences closed and
  reopened), and no message is ever longer than `max_text`.
- A message changes (is posted or edited) at most once per `interval_s`: an edit that is
  not due yet is deferred, and `wake_at` says when it will be; only the newest text is
  ever sent, so edits never queue up behind a fast agent.
- Messages are posted in order; the caller performs the actions `next` returns in order and
  reports each with `posted` / `edited` before asking again.

No I/O and no clock: `now` is passed in (the outbox's monotonic clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .chunking import split_text

__all__ = ["EDIT_INTERVAL_S", "Edit", "Post", "ReplyStreamMachine", "StreamAction"]

#: At most one change per message per second (Slack's `chat.update` is a Tier 3 method,
#: about 50 a minute; Telegram allows about one edit a second per chat).
EDIT_INTERVAL_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class Post:
    """Post message `index` (the next one) with `text`."""

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the text of posted message `index` (`message_id`) with `text`."""

    index: int
    message_id: str
    text: str


StreamAction = Post | Edit


@dataclass(slots=True)
class _Shown:
    message_id: str
    text: str
    changed_at: float


class ReplyStreamMachine:
    """Decide the posts and edits that show a growing reply (see the module docstring)."""

    def __init__(self, max_text: int, interval_s: float = EDIT_INTERVAL_S) -> None:
        self._max_text = max_text
        self._interval_s = interval_s
        self._text = ""
        self._chunks: list[str] | None = []
        self._shown: list[_Shown] = []
        self.ended = False

    @property
    def text(self) -> str:
        """The reply's text so far."""
        return self._text

    @property
    def message_ids(self) -> list[str]:
        """The ids of the messages posted so far, in order."""
        return [shown.message_id for shown in self._shown]

    def update(self, text: str) -> None:
        """Take the reply's whole text so far (each update replaces the previous one)."""
        if text != self._text and not self.ended:
            self._text = text
            self._chunks = None  # split again on the next decision, not on every delta

    def end(self, text: str) -> None:
        """Take the reply's final text; no update comes after it."""
        self.update(text)
        self.ended = True

    def chunks(self) -> list[str]:
        """The messages the text so far makes."""
        if self._chunks is None:
            self._chunks = split_text(self._text, self._max_text)
        return self._chunks

    def next(self, now: float) -> list[StreamAction]:
        """Return what to send now: due edits of posted messages, then new messages."""
        chunks = self.chunks()
        actions: list[StreamAction] = []
        for index, shown in enumerate(self._shown[: len(chunks)]):
            if shown.text != chunks[index] and now >= shown.changed_at + self._interval_s:
                actions.append(Edit(index, shown.message_id, chunks[index]))
        actions += [Post(i, chunks[i]) for i in range(len(self._shown), len(chunks))]
        return actions

    def wake_at(self) -> float | None:
        """When a deferred edit becomes due, or None when every message is up to date."""
        chunks = self.chunks()
        due = [
            shown.changed_at + self._interval_s
            for index, shown in enumerate(self._shown[: len(chunks)])
            if shown.text != chunks[index]
        ]
        return min(due, default=None)

    def posted(self, index: int, message_id: str, text: str, now: float) -> None:
        """Record that message `index` was posted with `text`."""
        assert index == len(self._shown), "messages are posted in order"
        self._shown.append(_Shown(message_id, text, now))

    def edited(self, index: int, text: str, now: float) -> None:
        """Record that message `index` now shows `text`."""
        shown = self._shown[index]
        shown.text, shown.changed_at = text, now

    @property
    def done(self) -> bool:
        """Whether the reply ended and every message shows its final text."""
        chunks = self.chunks()
        return (
            self.ended
            and len(self._shown) >= len(chunks)
            and all(s.text == c for s, c in zip(self._shown, chunks, strict=False))
        )

    def first_stale(self) -> int:
        """The first posted message not showing its current text (or the next to post)."""
        chunks = self.chunks()
        for index, shown in enumerate(self._shown):
            if index >= len(chunks) or shown.text != chunks[index]:
                return index
        return len(self._shown)

    def rest_from(self, index: int) -> str:
        """The text of messages `index` and later, to send anew when an edit failed."""
        return "\n".join(self.chunks()[index:])
