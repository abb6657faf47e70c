"""Daemon API keys: random 256-bit values, stored only as SHA-256 hashes (spec §7.1)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

__all__ = ["KEY_PREFIX", "hash_key", "new_key", "new_key_id", "tokens_equal"]

#: Makes a daemon key recognisable in a config file (and by secret scanners).
KEY_PREFIX: Final = "cgk_"
_KEY_BYTES: Final = 32


def new_key() -> str:
    """Return a fresh key: the prefix and 256 random bits in base64url."""
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def new_key_id() -> str:
    """Return a short public id for a key."""
    return "key_" + secrets.token_hex(8)


def hash_key(key: str) -> str:
    """Return the stored form of a key: ``sha256:`` and lowercase hex."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def tokens_equal(given: str, expected: str) -> bool:
    """Compare two tokens in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
