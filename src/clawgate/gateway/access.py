"""Who may connect: the shared secret, allowed origins and the login throttle, changeable live."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.auth import AuthMode, AuthThrottle, SharedSecretAuth, secrets_equal

__all__ = ["GatewayAccess"]


@dataclass(slots=True)
class GatewayAccess:
    """The access rules every handshake reads; config writes replace them."""

    auth: SharedSecretAuth
    throttle: AuthThrottle
    allowed_origins: frozenset[str] = frozenset()
    # True when the shared secret came from a flag or the environment: file edits leave it.
    auth_pinned: bool = False
    # Approve pairing silently for loopback peers without forwarding headers (spec §6).
    auto_approve_loopback: bool = True

    def replace_secret(self, mode: AuthMode, secret: str | None) -> bool:
        """Adopt a new shared secret from the config file; return whether it changed.

        A pinned secret stays, and a mode change needs a restart: both return False.
        """
        if self.auth_pinned or mode is not self.auth.mode:
            return False
        if mode is AuthMode.NONE or not secret or self.auth.secret is None:
            return False
        if secrets_equal(secret, self.auth.secret):
            return False
        self.auth = SharedSecretAuth(mode, secret)
        return True
