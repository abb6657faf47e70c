"""Request/response correlation: pending ids, one- and two-response calls, call timeouts.

Invariants:
- An id is pending from before its frame is sent until its last response arrives, its call
  times out, fails or is cancelled, or the connection closes; every way out removes it.
- A call's ``timeout`` covers waiting for an open connection as well as for the (first)
  response, so a call made while reconnecting cannot wait past it.
- A two-response call's final future has no deadline; cancelling it drops the id. Its
  exception is marked retrieved, so a caller that never awaits it leaves no warning.
- When the connection closes, every pending future fails with ``GatewayConnectionError``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ._errors import GatewayConnectionError, GatewayError, GatewayTimeoutError
from ._frames import Response, encode_request

__all__ = ["Link", "Pending", "PendingRequests", "request", "request_streaming"]


@dataclass(slots=True)
class Pending:
    """Futures awaiting the response(s) to one request id."""

    first: asyncio.Future[Response]
    final: asyncio.Future[Response] | None = None  # set for two-response (streaming) calls


class PendingRequests:
    """The requests of one connection that await a response, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, Pending] = {}

    def add(self, request_id: str, pending: Pending) -> None:
        """Await the response(s) to ``request_id``."""
        self._by_id[request_id] = pending

    def pop(self, request_id: str) -> None:
        """Stop awaiting ``request_id``, if it still is."""
        self._by_id.pop(request_id, None)

    def resolve(self, response: Response) -> bool:
        """Hand ``response`` to the request awaiting it; return False if none is."""
        pending = self._by_id.get(response.id)
        if pending is None:
            return False
        if not pending.first.done():
            pending.first.set_result(response)
            if pending.final is None:
                del self._by_id[response.id]
            return True
        if pending.final is not None and not pending.final.done():
            pending.final.set_result(response)
        del self._by_id[response.id]
        return True

    def fail_all(self, message: str, close_code: int | None, close_reason: str | None) -> None:
        """Fail every pending future with a ``GatewayConnectionError`` and forget them."""
        for pending in self._by_id.values():
            for future in (pending.first, pending.final):
                if future is not None and not future.done():
                    future.set_exception(
                        GatewayConnectionError(
                            message, close_code=close_code, close_reason=close_reason
                        )
                    )
        self._by_id.clear()


class Link(Protocol):
    """What a request needs from the connection it goes out on."""

    @property
    def pending(self) -> PendingRequests:
        """Return the connection's pending requests."""
        ...

    async def send(self, data: bytes) -> None:
        """Send one text frame."""
        ...


async def request(
    wait_open: Callable[[], Awaitable[Link]], method: str, params: Any, timeout: float | None
) -> Response:
    """Send a request on the connection ``wait_open`` returns and return its first response.

    Raises:
        GatewayConnectionError: Not connected, or the connection closed before the response.
        GatewayTimeoutError: No response within ``timeout``.
    """
    request_id = str(uuid.uuid4())
    conn: Link | None = None
    try:
        async with asyncio.timeout(timeout):
            conn = await wait_open()
            future = asyncio.get_running_loop().create_future()
            conn.pending.add(request_id, Pending(future))
            await conn.send(encode_request(request_id, method, params))
            response: Response = await future
            return response
    except TimeoutError:
        raise GatewayTimeoutError(f"{method}: no response within {timeout}s") from None
    finally:
        if conn is not None:
            conn.pending.pop(request_id)


async def request_streaming(
    wait_open: Callable[[], Awaitable[Link]], method: str, params: Any, timeout: float | None
) -> tuple[Any, asyncio.Future[Response]]:
    """Send a request answered twice; return the first payload and a future of the final.

    Raises:
        GatewayCallError: The first response is ``ok:false``.
        GatewayConnectionError: Not connected, or the connection closed first.
        GatewayTimeoutError: No first response within ``timeout``.
    """
    request_id = str(uuid.uuid4())
    loop = asyncio.get_running_loop()
    final: asyncio.Future[Response] = loop.create_future()
    final.add_done_callback(_consume_exception)
    conn: Link | None = None
    try:
        async with asyncio.timeout(timeout):
            conn = await wait_open()
            first_future: asyncio.Future[Response] = loop.create_future()
            conn.pending.add(request_id, Pending(first_future, final))
            await conn.send(encode_request(request_id, method, params))
            first = await first_future
    except BaseException as exc:
        if conn is not None:
            conn.pending.pop(request_id)
        final.cancel()
        if isinstance(exc, TimeoutError) and not isinstance(exc, GatewayError):
            raise GatewayTimeoutError(f"{method}: no response within {timeout}s") from None
        raise
    if not first.ok or _is_final_payload(first.payload):
        conn.pending.pop(request_id)
        if not final.done():
            final.set_result(first)
        first.result()  # raises GatewayCallError for ok:false
        return first.payload, final
    pending = conn.pending
    final.add_done_callback(lambda f: pending.pop(request_id) if f.cancelled() else None)
    return first.payload, final


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved."""
    # A final-response future the caller never awaits must not log "exception never retrieved".
    if not future.cancelled():
        future.exception()


def _is_final_payload(payload: Any) -> bool:
    """Return True if a two-response method's first payload is already the final one."""
    if not isinstance(payload, dict):
        return False
    status = payload.get("status")
    return isinstance(status, str) and status != "accepted"
