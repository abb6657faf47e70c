"""How deep inbound JSON (and TOML) may nest, checked without recursion (spec §11).

Every inbound boundary (WebSocket frames, plugin IPC lines, the hub's HTTP bodies,
`config.set`/`config.patch`, the OpenAI-compatible and webhook bodies, the canvas auth frame,
the hub link's envelopes) refuses nesting deeper than `MAX_NESTING_DEPTH` with its own
error before anything recursive (pydantic, merge patch, tomllib, re-encoding) sees it. A
top-level object or array is depth 1. orjson's C parser stops at 1024 levels by itself;
these checks bring that down to 64 with loops, never the Python stack.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .limits import MAX_NESTING_DEPTH

__all__ = [
    "MAX_NESTING_DEPTH",
    "is_depth_error",
    "nesting_error",
    "nesting_exceeds",
    "text_nesting_exceeds",
]

# Strings (TOML basic, literal and multi-line; JSON's are basic) are skipped whole, so a
# bracket inside one does not count; comments likewise.
_TOKENS: Final = re.compile(
    r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]',
    re.DOTALL,
)


def nesting_error(limit: int = MAX_NESTING_DEPTH) -> str:
    """Return the one-line refusal used at every boundary."""
    return f"JSON nested deeper than {limit} levels; flatten it"


def is_depth_error(exc: ValueError) -> bool:
    """Return whether orjson refused a document for its own depth limit (1024)."""
    return str(exc).startswith("depth limit")


def nesting_exceeds(value: Any, limit: int = MAX_NESTING_DEPTH) -> bool:
    """Return whether parsed JSON `value` nests deeper than `limit` containers."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def text_nesting_exceeds(text: str, limit: int = MAX_NESTING_DEPTH) -> bool:
    """Return whether brackets and braces in JSON or TOML `text` nest deeper than `limit`.

    Counts `[`/`{` outside strings and comments; a TOML table header (`[a]`, `[[a]]`)
    counts as the one or two levels it spells, which never reaches the limit.
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case, at C speed
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth = max(depth - 1, 0)
    return False
