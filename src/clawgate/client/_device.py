"""The device identity's part in the handshake: its options, signature and tokens (spec §4).

Invariants:
- ``device_tokens`` belong to ``identity``: a token is bound to the device it was issued to,
  and ``identity`` is the only source of the ``device`` block.
- The signature covers the params exactly as sent and this connection's challenge nonce.
- A stored token the gateway refuses is forgotten; an issued one is stored unless it is the
  one already stored. A failure of the store is logged, never raised.
- The store does small blocking file I/O (with fsync on writes): it runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..protocol.device_auth import DeviceIdentity
from ._connection import ConnLogger
from ._errors import GatewayConnectionError, IdentityError
from ._frames import Event, issued_device_token, parse_challenge, sign_device
from ._identity import DeviceTokenStore, StoredToken

__all__ = ["DeviceAuth", "check_device_options"]

_LOGGER = logging.getLogger(__name__)


def _wall_clock_ms() -> int:
    """Return the local wall clock in ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


def check_device_options(
    identity: DeviceIdentity | None,
    device_tokens: DeviceTokenStore | None,
    extra_connect_params: Mapping[str, Any] | None,
) -> None:
    """Refuse device options that cannot work together.

    Raises:
        ValueError: ``device_tokens`` is given without ``identity`` or for another device;
            ``extra_connect_params`` holds a ``device`` while ``identity`` is set.
    """
    if device_tokens is not None:
        if identity is None:
            raise ValueError("device_tokens needs an identity: tokens are bound to a device")
        if device_tokens.device_id != identity.device_id:
            raise ValueError("device_tokens belongs to another device identity")
    if identity is not None and extra_connect_params and "device" in extra_connect_params:
        raise ValueError("pass either identity or extra_connect_params['device'], not both")


class DeviceAuth:
    """Sign ``connect`` as one device and keep the tokens the gateway issues to one role."""

    def __init__(
        self,
        identity: DeviceIdentity | None,
        device_tokens: DeviceTokenStore | None,
        role: str,
        url: str,
    ) -> None:
        """Act for ``identity`` (None: no device block) in ``role`` against ``url``."""
        self._identity = identity
        self._device_tokens = device_tokens
        self._role = role
        self._log = ConnLogger(_LOGGER, {"conn": url})

    def sign(self, params: dict[str, Any], challenge: Event) -> dict[str, Any] | None:
        """Return the signed ``device`` block for ``params`` and the challenge, if any."""
        if self._identity is None:
            return None
        offered = parse_challenge(challenge)
        if offered.nonce is None:
            raise GatewayConnectionError(
                "connect.challenge carried no nonce; cannot sign the device identity"
            )
        # OpenClaw's docs say to sign with the challenge's ts, which also spares a client
        # with a wrong clock the server's +-2 min window; the local clock is the fallback.
        signed_at = offered.ts if offered.ts is not None else _wall_clock_ms()
        return sign_device(params, self._identity, nonce=offered.nonce, signed_at_ms=signed_at)

    async def stored(self) -> StoredToken | None:
        """Return the device token stored for this client's role, if any."""
        if self._device_tokens is None:
            return None
        return await asyncio.to_thread(self._device_tokens.get, self._role)

    async def store(self, hello: dict[str, Any], stored: StoredToken | None) -> None:
        """Keep the device token ``hello-ok`` carries; a failed write is only logged."""
        if self._device_tokens is None:
            return
        issued = issued_device_token(hello, default_role=self._role, now_ms=_wall_clock_ms())
        if issued is None or issued == stored:  # the gateway returns a valid token as is
            return
        try:
            await asyncio.to_thread(
                self._device_tokens.put,
                issued.role,
                issued.token,
                issued.scopes,
                issued.issued_at_ms,
            )
        except IdentityError as exc:
            self._log.warning("device token not stored: %s", exc)

    async def forget(self) -> None:
        """Drop the stored token the gateway rejected, so the next connect goes without it."""
        assert self._device_tokens is not None
        try:
            await asyncio.to_thread(self._device_tokens.forget, self._role)
        except IdentityError as exc:
            self._log.warning("rejected device token not forgotten: %s", exc)
        else:
            self._log.info("gateway rejected the stored %s device token; forgot it", self._role)
