"""Split a reply into chunks a platform accepts (pure).

Rules, in order of preference: split at a paragraph break, else at a line break, else at a
space, else hard at the limit. A chunk never ends inside a fenced code block: the fence is
closed at the end of the chunk and reopened (with its info string) at the start of the next.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["split_text"]

_FENCE: Final = re.compile(r"^\s*(```+|~~~+)(.*)$")


def _open_fence(text: str, fence: tuple[str, str] | None) -> tuple[str, str] | None:
    """Return the fence still open after `text`, given the one open before it."""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        marker, info = match.group(1), match.group(2).strip()
        if fence is None:
            fence = (marker, info)
        elif marker.startswith(fence[0][0]) and len(marker) >= len(fence[0]) and not info:
            fence = None
    return fence


def _cut(text: str, limit: int) -> int:
    """Return where to cut `text` (longer than `limit`) so the head fits in `limit`."""
    window = text[:limit]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > limit // 4:
            return at + len(separator)
    return limit


def split_text(text: str, limit: int) -> list[str]:
    """Return `text` in chunks of at most `limit` characters; empty text gives no chunk.

    Raises:
        ValueError: `limit` is too small to hold a reopened fence and some text.
    """
    if limit < 32:
        raise ValueError("a chunk limit below 32 characters cannot hold a code fence")
    text = text.strip("\n")
    if not text.strip():
        return []
    chunks: list[str] = []
    fence: tuple[str, str] | None = None
    while text:
        prefix = f"{fence[0]}{fence[1]}\n" if fence else ""
        # Room for the reopened fence, and for a closing one should this chunk end inside.
        room = max(limit - len(prefix) - 4 - (len(fence[0]) if fence else 8), 16)
        if len(prefix) + len(text) <= limit and _open_fence(text, fence) is None:
            chunks.append(prefix + text)
            break
        head_len = len(text) if len(text) <= room else _cut(text, room)
        head, text = text[:head_len].rstrip("\n"), text[head_len:].lstrip("\n")
        after = _open_fence(head, fence)
        chunk = prefix + head
        if after is not None:
            chunk += f"\n{after[0]}"
        if chunk.strip():
            chunks.append(chunk)
        fence = after
    return chunks
