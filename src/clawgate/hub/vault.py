"""Where secret values live: sealed with AES-GCM at rest, or in hub memory only (spec §7.1).

The store only ever sees what ``seal`` returns: ciphertext, or None when there is no
secrets key and the values stay in this process (a restart loses them; the hub warns).
"""

from __future__ import annotations

import os
from typing import Any, Final, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["EncryptedVault", "MemoryVault", "SecretVault", "make_vault"]

_NONCE_BYTES: Final = 12
#: A version byte in front of every sealed blob, so the format can change later.
_FORMAT: Final = b"\x01"


class SecretVault(Protocol):
    """Seal secret values for the store and open them again."""

    #: True when sealed values survive a restart (they are in the database).
    durable: bool

    def seal(self, scope: str, values: dict[str, Any]) -> bytes | None:
        """Keep ``values`` for ``scope``; return what the store should hold."""
        ...

    def open(self, scope: str, sealed: bytes | None) -> dict[str, Any] | None:
        """Return the values of ``scope``, or None when they are not available."""
        ...

    def drop(self, scope: str) -> None:
        """Forget the values of ``scope`` (no-op for values at rest)."""
        ...


class EncryptedVault:
    """AES-256-GCM with a random nonce per blob; the scope is the associated data.

    Rotation: blobs are sealed with ``key`` and opened with it or, failing that, with each of
    ``previous`` in turn, so instances can move to a new key before every blob is re-sealed.
    """

    durable = True

    def __init__(self, key: bytes, previous: tuple[bytes, ...] = ()) -> None:
        """Seal with a 32-byte ``key``; also open blobs sealed with one of ``previous``."""
        self._aead = AESGCM(key)
        self._openers = (self._aead, *(AESGCM(old) for old in previous))

    def seal(self, scope: str, values: dict[str, Any]) -> bytes | None:
        """Return ``version || nonce || ciphertext`` bound to ``scope``."""
        if not values:
            return None
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT + nonce + self._aead.encrypt(nonce, orjson.dumps(values), scope.encode())

    def open(self, scope: str, sealed: bytes | None) -> dict[str, Any] | None:
        """Decrypt a blob; None when missing, of an unknown format or not for ``scope``."""
        if not sealed or sealed[:1] != _FORMAT:
            return None
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        for aead in self._openers:
            try:
                values = orjson.loads(aead.decrypt(nonce, ciphertext, scope.encode()))
            except InvalidTag:
                continue
            return values if isinstance(values, dict) else None
        return None

    def drop(self, scope: str) -> None:
        """Nothing to do: the blob is cleared with its row."""


class MemoryVault:
    """Values in this process only; the store gets None."""

    durable = False

    def __init__(self) -> None:
        """Start empty."""
        self._values: dict[str, dict[str, Any]] = {}

    def seal(self, scope: str, values: dict[str, Any]) -> bytes | None:
        """Remember ``values`` in memory."""
        if values:
            self._values[scope] = values
        else:
            self._values.pop(scope, None)
        return None

    def open(self, scope: str, sealed: bytes | None) -> dict[str, Any] | None:
        """Return the remembered values, if this process still has them."""
        return self._values.get(scope)

    def drop(self, scope: str) -> None:
        """Forget the values."""
        self._values.pop(scope, None)


def make_vault(key: bytes | None, previous: tuple[bytes, ...] = ()) -> SecretVault:
    """Return an encrypting vault for a key (opening ``previous`` too), else a memory-only one."""
    return EncryptedVault(key, previous) if key is not None else MemoryVault()
