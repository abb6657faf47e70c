"""Reconnecting: re-open a lost connection with backoff until it is back, refused or closed.

Invariants:
- One supervisor task per client: ``connect`` starts it when ``reconnect=True``, ``close``
  cancels and awaits it.
- It waits for the lost connection's reader to finish before dialling, so two readers never
  overlap and the old connection's pending calls have failed first.
- A refusal a retry cannot fix (``is_fatal_handshake_error``) ends reconnecting for good;
  after any other failure it waits for the next backoff delay, but never less than the
  ``retryAfterMs`` the gateway asked for.
- The host's state is checked again after every await: ``close()`` may run during any of
  them, and a connection opened after it is closed at once instead of installed.
- If the supervisor itself fails it gives up, which closes the client: no caller is left
  waiting on a reconnect that never comes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from ._backoff import Backoff, is_fatal_handshake_error, retry_floor
from ._connection import Connection, ConnLogger
from ._errors import GatewayError

__all__ = ["ReconnectCallback", "ReconnectHost", "Supervisor"]

_LOGGER = logging.getLogger(__name__)

ReconnectCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


class ReconnectHost(Protocol):
    """What the supervisor needs from the client it keeps connected."""

    @property
    def current(self) -> Connection | None:
        """Return the installed connection."""
        ...

    @property
    def reconnecting(self) -> bool:
        """Return True while the client wants a new connection."""
        ...

    async def open(self) -> Connection:
        """Open and authenticate a new connection."""
        ...

    def install(self, conn: Connection) -> None:
        """Make ``conn`` the client's open connection."""
        ...

    def give_up(self, exc: BaseException) -> None:
        """Stop reconnecting for good because of ``exc``."""
        ...


class Supervisor:
    """Re-establish a client's connection each time it is lost."""

    def __init__(
        self,
        host: ReconnectHost,
        backoff: Backoff,
        on_reconnect: ReconnectCallback | None,
        url: str,
    ) -> None:
        """Keep ``host`` connected to ``url``, waiting ``backoff`` between attempts."""
        self._host = host
        self._backoff = backoff
        self._on_reconnect = on_reconnect
        self._url = url
        self._log = ConnLogger(_LOGGER, {"conn": url})

    async def run(self) -> None:
        """Re-establish the connection each time it is lost, until close() or a fatal error."""
        try:
            await self._loop()
        except Exception as exc:
            # A bug here must not leave callers waiting on a reconnect that never comes.
            self._log.exception("reconnect supervisor failed")
            self._host.give_up(exc)

    async def _loop(self) -> None:
        """Wait for each connection to end, then reconnect; return when there is nothing to do."""
        while True:
            conn = self._host.current
            assert conn is not None
            await conn.closed.wait()
            if conn.reader is not None:
                await asyncio.wait([conn.reader])
            if not self._host.reconnecting:
                return
            new_conn = await self._reconnect_until_open()
            if new_conn is None:
                return
            await self._notify(new_conn.hello)

    async def _reconnect_until_open(self) -> Connection | None:
        """Retry the handshake with backoff; return the new connection, or None on giving up."""
        floor = 0.0
        while True:
            delay = max(self._backoff.next_delay(), floor)
            self._log.info(
                "reconnecting to %s in %.2fs (attempt %d)", self._url, delay, self._backoff.attempts
            )
            await asyncio.sleep(delay)
            if not self._host.reconnecting:
                return None
            try:
                conn = await self._host.open()
            except (GatewayError, aiohttp.ClientError, OSError) as exc:
                if is_fatal_handshake_error(exc):
                    self._log.error("reconnect refused, giving up: %s", exc)
                    self._host.give_up(exc)
                    return None
                floor = retry_floor(exc)
                self._log.warning("reconnect attempt failed: %s", exc)
                continue
            if not self._host.reconnecting:  # close() raced the handshake
                await conn.aclose()
                return None
            self._host.install(conn)
            return conn

    async def _notify(self, hello: dict[str, Any]) -> None:
        """Run the on_reconnect callback; its failure is logged, never raised."""
        if self._on_reconnect is None:
            return
        try:
            result = self._on_reconnect(hello)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception("on_reconnect callback failed")
