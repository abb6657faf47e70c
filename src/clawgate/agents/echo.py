"""The zero-config backend: stream the user's own text back, word by word."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Final

from .backend import BackendItem, BackendRequest, Completion, TextDelta

__all__ = ["EchoBackend", "split_words"]

# A word with the whitespace before it, so joining the pieces gives the text back exactly.
_WORD: Final = re.compile(r"\s*\S+|\s+$")


def split_words(text: str) -> list[str]:
    """Split `text` into pieces that each hold one word; they join back to `text`."""
    return _WORD.findall(text)


class EchoBackend:
    """Answer every message with itself, one word per `delay_s`."""

    name = "echo"

    def __init__(self, delay_s: float) -> None:
        self._delay_s = delay_s

    async def stream(self, request: BackendRequest) -> AsyncIterator[BackendItem]:
        """Yield the message's words with a pause before each but the first."""
        for index, piece in enumerate(split_words(request.message)):
            if index and self._delay_s > 0:
                await asyncio.sleep(self._delay_s)
            elif index:
                await asyncio.sleep(0)  # stay abortable even without a delay
            yield TextDelta(piece)
        yield Completion(stop_reason="stop")
