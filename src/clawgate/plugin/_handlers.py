"""Handler dispatch: the plugin's request and event tables, and the answer to one request.

Invariants:
- Every request gets exactly one response frame: the handler's result, the ``IpcError`` it
  raised, ``METHOD_NOT_FOUND``, or ``INTERNAL`` for anything else.
- An unexpected exception is answered ``INTERNAL`` with its type name, never ``str(exc)``:
  the text may carry secrets or internals.
- Event handlers run one at a time, in the order they were added; one that raises is logged
  and the next still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..protocol.ipc.frames import (
    INTERNAL,
    METHOD_NOT_FOUND,
    Event,
    IpcError,
    Request,
    encode_error,
    encode_response,
)

__all__ = ["EventHandler", "Handlers", "RequestHandler"]

RequestHandler = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any] | None]]
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Handlers:
    """The handlers of one plugin by method and by event; ``ping`` is answered built in."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        """Create the tables with only the built-in ``ping``, which reads ``now``."""
        self._now = now
        self._requests: dict[str, RequestHandler] = {"ping": self._ping}
        self._events: dict[str, list[EventHandler]] = {}

    def add_request(self, method: str, fn: RequestHandler) -> None:
        """Bind ``fn`` to ``method``; only the built-in ``ping`` may be replaced.

        Raises:
            ValueError: If ``method`` already has a handler.
        """
        if method in self._requests and method != "ping":
            raise ValueError(f"a handler for {method!r} is already registered")
        self._requests[method] = fn

    def add_event(self, event: str, fn: EventHandler) -> None:
        """Subscribe ``fn`` to ``event`` after the handlers it already has."""
        self._events.setdefault(event, []).append(fn)

    async def answer(self, req: Request, log: logging.LoggerAdapter[Any]) -> bytes:
        """Run the handler for ``req`` and return the encoded response frame."""
        handler = self._requests.get(req.method)
        if handler is None:
            error = IpcError(METHOD_NOT_FOUND, f"unknown method {req.method!r}")
            return encode_error(req.id, error)
        try:
            result = await handler(req.params)
            if result is None:
                result = {}
            if not isinstance(result, Mapping):
                raise TypeError("handler returned a non-object")
            # INTERNAL above 1 MiB: the daemon would close on the frame (§2.1).
            return encode_response(req.id, dict(result))
        except IpcError as exc:
            return encode_error(req.id, exc)
        except Exception as exc:
            # Never send str(exc): it may carry secrets or internals.
            log.exception("handler for %s failed", req.method)
            error = IpcError(INTERNAL, f"{req.method} failed ({type(exc).__name__})")
            return encode_error(req.id, error)

    async def deliver(self, ev: Event, log: logging.LoggerAdapter[Any]) -> None:
        """Run every handler of ``ev`` in turn; log the ones that raise."""
        for handler in self._events.get(ev.event, ()):
            try:
                await handler(ev.payload)
            except Exception:
                log.exception("handler for event %s failed", ev.event)

    async def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer ``ping`` with the clock as RFC 3339 UTC, to the millisecond."""
        now = self._now().astimezone(UTC)
        return {"now": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"}
