"""Inbound bytes in, frames out: the receiving half of plugin IPC, without I/O (spec §2.1).

Both ends feed every chunk they read to one `FrameReader` and act on what it returns, so a
byte stream one end refuses the other refuses at the same frame with the same error. The
first unusable frame is fatal: the reader keeps it in `error` and takes no more input, and the
shell answers `encode_error(error.reply_id, error)`, then closes within 1 s.
"""

from __future__ import annotations

from .frames import FRAME_TOO_LARGE, Frame, FrameError, parse_frame
from .framing import MAX_FRAME_BYTES, LineDecoder

__all__ = ["FrameReader"]


class FrameReader:
    """Split a byte stream into frames, stopping at the first unusable one."""

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES) -> None:
        self._lines = LineDecoder(max_bytes)
        self._error: FrameError | None = None

    @property
    def error(self) -> FrameError | None:
        """The frame error that ended the stream: `INVALID_FRAME` or `FRAME_TOO_LARGE`."""
        return self._error

    def receive_data(self, data: bytes) -> list[Frame]:
        """Take `data` and return the frames it completed, in order.

        Frames before an unusable one are still returned; check `error` afterwards.
        """
        if self._error is not None:
            return []
        frames: list[Frame] = []
        for line in self._lines.feed(data):
            try:
                frames.append(parse_frame(line))
            except FrameError as exc:
                self._error = exc
                return frames
        if self._lines.overflow:
            self._error = FrameError(FRAME_TOO_LARGE, "frame exceeds 1 MiB")
        return frames
