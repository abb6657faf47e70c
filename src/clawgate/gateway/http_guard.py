"""What authenticated HTTP routes share: credential checks, the failure delay, capped bodies.

The decisions are `protocol/http_auth.py`'s; this shell reads the request, the live
access rules and the clock, and waits out the failure delay (spec §5.4) before a refusal
is answered, as the WebSocket handshake does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import hdrs, web

from ..protocol.http_auth import Admitted, CredentialCheck, Refused, bearer_token
from .access import GatewayAccess
from .pairing import PairingService

__all__ = ["BodyTooLarge", "HttpGuard"]

_READ_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The request body is over the route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes")
        self.limit = limit


class HttpGuard:
    """Authenticate HTTP requests against the gateway's access rules, as they are now."""

    def __init__(
        self,
        access: GatewayAccess,
        pairing: PairingService,
        clock: Callable[[], int],
        failure_delay_ms: int,
    ) -> None:
        self._access = access
        self._pairing = pairing
        self._clock = clock
        self._failure_delay_s = failure_delay_ms / 1000

    def _check(self) -> CredentialCheck:
        # Built per request: a config write may replace the secret, a pairing the registry.
        access = self._access
        return CredentialCheck(access.auth, self._pairing.registry, access.throttle)

    def operator(self, request: web.Request) -> Admitted | Refused:
        """Decide the bearer token of a request that needs `operator.write`."""
        token = bearer_token(request.headers.get(hdrs.AUTHORIZATION))
        return self._check().operator(
            token,
            remote_ip=request.remote or "",
            now_ms=self._clock(),
        )

    def hook_token(
        self, request: web.Request, token: str | None, expected: str
    ) -> Admitted | Refused:
        """Decide a webhook token against the hooks' own secret."""
        return self._check().hook_token(
            token,
            expected,
            remote_ip=request.remote or "",
            now_ms=self._clock(),
        )

    def lockout(self, request: web.Request) -> Refused | None:
        """Return the lockout refusal of the request's address, or None."""
        return self._check().lockout(request.remote or "", self._clock())

    def signature_failed(self, request: web.Request) -> Refused:
        """Count a missing or wrong webhook signature toward the address's lockout."""
        return self._check().signature_failed(request.remote or "", self._clock())

    async def delay(self, refused: Refused) -> None:
        """Wait the fixed failure delay before a failed guess is answered."""
        if refused.counted:
            await asyncio.sleep(self._failure_delay_s)

    @staticmethod
    async def read_body(request: web.Request, limit: int) -> bytes:
        """Return the body, reading at most `limit` bytes of it.

        Raises:
            BodyTooLarge: the declared or the actual length is over `limit`.
        """
        declared = request.content_length
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
