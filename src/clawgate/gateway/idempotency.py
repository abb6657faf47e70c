"""Run side-effecting calls at most once per idempotency key (spec §9)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol.dedupe import DedupeCache, EntryState
from ..protocol.errors import RequestError

__all__ = ["IdempotentCalls"]


class IdempotentCalls:
    """Wrap the pure dedupe cache with futures so duplicates can wait for the original."""

    def __init__(self, cache: DedupeCache, clock: Callable[[], int]) -> None:
        self.cache = cache
        self._clock = clock

    def run_now(self, namespace: str, key: str, call: Callable[[], Any]) -> Any:
        """Like `run` for a call that completes without waiting, so none is ever in flight.

        Raises:
            RequestError: the call failed, now or when it first ran.
        """
        entry = self.cache.lookup(namespace, key, self._clock())
        if entry is not None and entry.state is EntryState.DONE:
            if entry.error is not None:
                raise entry.error
            return entry.payload
        entry = self.cache.begin(namespace, key, self._clock())
        try:
            result = call()
        except RequestError as exc:
            self.cache.complete(entry, self._clock(), error=exc)
            raise
        except BaseException:
            self.cache.discard(entry)
            raise
        self.cache.complete(entry, self._clock(), payload=result)
        return result

    async def run(self, namespace: str, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Return `call()`'s result, or the cached outcome of an earlier call with `key`.

        Raises:
            RequestError: the call failed, now or when it first ran.
        """
        entry = self.cache.lookup(namespace, key, self._clock())
        if entry is not None:
            if entry.state is EntryState.IN_FLIGHT:
                # Shielded: a duplicate that gives up must not cancel the original's future.
                await asyncio.shield(entry.context["done"])
                return await self.run(namespace, key, call)
            if entry.error is not None:
                raise entry.error
            return entry.payload
        entry = self.cache.begin(namespace, key, self._clock())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.context["done"] = done
        try:
            result = await call()
        except RequestError as exc:
            self.cache.complete(entry, self._clock(), error=exc)
            raise
        except BaseException:
            # Unexpected failures and cancellations are not cached, so a retry can succeed.
            self.cache.discard(entry)
            raise
        finally:
            done.set_result(None)
        self.cache.complete(entry, self._clock(), payload=result)
        return result
