"""Server-Sent Events, decoded without I/O: bytes in, events out (WHATWG HTML "event stream").

The Signal adapter reads signal-cli's `/api/v1/events` with it; the shell only moves bytes.
Lines end with LF or CRLF (a lone CR, which no server we read sends, is not a line end).
An event whose lines grow past `max_event_bytes` is dropped whole (counted in `dropped`)
instead of being buffered without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SseDecoder", "SseEvent"]


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type (`message` when unnamed), data and last event id."""

    event: str
    data: str
    id: str | None


class SseDecoder:
    """Turn chunks of an event stream into `SseEvent`s; keeps the last event id."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        #: The stream's last event id (sent back as `Last-Event-ID` when reconnecting).
        self.last_event_id: str | None = None
        #: How many events were dropped for being larger than `max_event_bytes`.
        self.dropped = 0
        #: How many comment lines (keep-alives) were read.
        self.comments = 0
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._skipping = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Take the next bytes of the stream; return the events they completed."""
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            event = self._line(line.removesuffix(b"\r"))
            if event is not None:
                events.append(event)
        if len(self._buffer) + self._size > self.max_event_bytes:
            self._buffer = b""
            self._skip()
        return events

    def _skip(self) -> None:
        """Drop the event being read; ignore its lines until the blank line that ends it."""
        if not self._skipping:
            self.dropped += 1
        self._skipping = True
        self._data, self._event, self._size = [], "", 0

    def _line(self, raw: bytes) -> SseEvent | None:
        if not raw:
            return self._dispatch()
        if self._skipping:
            return None
        self._size += len(raw)
        if self._size > self.max_event_bytes:
            self._skip()
            return None
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        """A blank line: hand over the event read so far (none if it had no data)."""
        skipped, self._skipping = self._skipping, False
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        if skipped or not data:
            return None
        return SseEvent(event or "message", "\n".join(data), self.last_event_id)
