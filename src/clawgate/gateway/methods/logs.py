"""`logs.tail`: read the gateway's log file by byte cursor (spec §10.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ...protocol.limits import LOGS_TAIL_MAX_BYTES, LOGS_TAIL_MAX_LINES
from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import Params, Result

__all__ = ["LogsTailParams", "logs_tail", "read_tail"]


class LogsTailParams(Params):
    """Params of `logs.tail`."""

    cursor: Annotated[int, Field(ge=0)] | None = None
    limit: Annotated[int, Field(ge=1, le=LOGS_TAIL_MAX_LINES)] = 200
    maxBytes: Annotated[int, Field(ge=1, le=LOGS_TAIL_MAX_BYTES)] = 250_000


class LogsTailResult(Result):
    """Result of `logs.tail`."""

    file: str
    cursor: int
    size: int
    lines: list[str]
    truncated: bool | None = None
    reset: bool | None = None


def _split(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").splitlines()


def read_tail(path: Path, cursor: int | None, limit: int, max_bytes: int) -> dict[str, Any]:
    """Read complete lines of `path` from `cursor`, or its last `limit` lines without one."""
    result: dict[str, Any] = {"file": path.name}
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return {**result, "cursor": 0, "size": 0, "lines": []}
    with handle:
        size = handle.seek(0, 2)
        if cursor is None:
            start = max(size - max_bytes, 0)
            handle.seek(start)
            data = handle.read(size - start)
            lines = _split(data)
            if start > 0 and lines:
                lines = lines[1:]  # the first line is cut in the middle
                result["truncated"] = True
            if len(lines) > limit:
                lines = lines[-limit:]
            return {**result, "cursor": size, "size": size, "lines": lines}
        if cursor > size:
            # The file shrank under the cursor: it was rotated. Start over.
            result["reset"] = True
            cursor = 0
        handle.seek(cursor)
        data = handle.read(max_bytes)
        # Only complete lines move the cursor; a partial last line is read next time.
        raw_lines = data.split(b"\n")[:-1][:limit]
        consumed = sum(len(line) + 1 for line in raw_lines)
        if not raw_lines and len(data) == max_bytes:
            raw_lines, consumed = [data], len(data)  # a line longer than maxBytes, in pieces
        lines = [line.decode("utf-8", errors="replace").rstrip("\r") for line in raw_lines]
        if cursor + consumed < size:
            result["truncated"] = True
        return {**result, "cursor": cursor + consumed, "size": size, "lines": lines}


@method("logs.tail", params=LogsTailParams, result=LogsTailResult, scope=READ)
async def logs_tail(ctx: CallContext, params: LogsTailParams) -> dict[str, Any]:
    """Return log lines after `cursor`, or the latest ones."""
    log_file = ctx.services.info.log_file
    if log_file is None:
        return {"file": "", "cursor": 0, "size": 0, "lines": []}
    return await asyncio.to_thread(
        read_tail, log_file, params.cursor, params.limit, params.maxBytes
    )
