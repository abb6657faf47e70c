"""Line framing for plugin IPC, without I/O (spec §2.1).

Each frame is one JSON object and an LF. The decoder never holds more than
`MAX_FRAME_BYTES` of an unfinished line: the moment a line would exceed it, the decoder
reports the overflow and refuses further input, and the shell answers `FRAME_TOO_LARGE`.
The limit counts every byte before the LF, a trailing CR included.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["MAX_FRAME_BYTES", "LineDecoder", "encode_frame"]

MAX_FRAME_BYTES: Final = 1_048_576


def encode_frame(obj: Any) -> bytes:
    """Encode one frame as compact JSON and a terminating LF."""
    return orjson.dumps(obj) + b"\n"


class LineDecoder:
    """Split a byte stream into lines, enforcing the frame size limit."""

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self._overflow = False

    @property
    def overflow(self) -> bool:
        """Whether a line exceeded the limit; the decoder then accepts no more input."""
        return self._overflow

    @property
    def buffered(self) -> int:
        """How many bytes of an unfinished line are held."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Take `data` and return the lines it completed, without LF or trailing CR.

        Empty lines are skipped. Lines completed before an overflow are still returned;
        check `overflow` afterwards.
        """
        if self._overflow:
            return []
        lines: list[bytes] = []
        start = 0
        end = len(data)
        while start < end:
            newline = data.find(b"\n", start)
            stop = end if newline < 0 else newline
            if len(self._buffer) + (stop - start) > self._max:
                self._overflow = True
                self._buffer.clear()
                return lines
            self._buffer += data[start:stop]
            if newline < 0:
                break
            line = bytes(self._buffer)
            self._buffer.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                lines.append(line)
            start = newline + 1
        return lines
