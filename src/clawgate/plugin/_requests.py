"""Request correlation on one connection: a future per frame id, its timeout, late replies.

Invariants:
- An id is pending from before its frame is queued until its reply, its timeout or the end
  of the connection; ``request`` removes it on every way out.
- A reply whose id is not pending (unknown, or timed out: §2.8 has no cancellation, so the
  daemon may still answer) settles nothing; the caller logs and drops it.
- When the connection ends, ``fail_all`` fails every pending request at once with
  ``NotConnectedError``; nothing waits for a reply that cannot come.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol.ipc.frames import TIMEOUT, IpcError, Response, encode_request
from ._errors import NotConnectedError, PluginError

__all__ = ["PendingRequests", "plugin_error"]


def plugin_error(error: IpcError) -> PluginError:
    """Return ``error`` under the SDK's public exception type."""
    return PluginError(error.code, error.message, retryable=error.retryable, details=error.details)


class PendingRequests:
    """The requests sent on one connection that await their reply, by frame id."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def request(
        self,
        send: Callable[[bytes], Awaitable[None]],
        method: str,
        params: dict[str, Any],
        timeout: float,
    ) -> dict[str, Any]:
        """Send a request with ``send`` and wait for its payload.

        Raises:
            PluginError: The daemon's error, ``INVALID_PARAMS`` for a frame over 1 MiB, or
                ``TIMEOUT`` (retryable).
            NotConnectedError: If the connection goes down first.
        """
        frame_id = str(uuid.uuid4())
        try:
            # INVALID_PARAMS above 1 MiB: the daemon would close on the frame (§2.1).
            data = encode_request(frame_id, method, params)
        except IpcError as exc:
            raise plugin_error(exc) from None
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._futures[frame_id] = fut
        try:
            async with asyncio.timeout(timeout):
                await send(data)
                return await fut
        except TimeoutError:
            raise PluginError(
                TIMEOUT, f"no response to {method} within {timeout:g} s", retryable=True
            ) from None
        finally:
            self._futures.pop(frame_id, None)

    def resolve(self, frame_id: str, frame: Response) -> bool:
        """Settle the request ``frame`` answers; return False if none awaits it."""
        fut = self._futures.get(frame_id)
        if fut is None or fut.done():
            return False
        if frame.ok:
            fut.set_result(frame.payload)
        else:
            assert frame.error is not None
            fut.set_exception(plugin_error(frame.error))
        return True

    def fail_all(self) -> None:
        """Fail every pending request with ``NotConnectedError`` and forget them."""
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(NotConnectedError("connection to the daemon was lost"))
        self._futures.clear()
