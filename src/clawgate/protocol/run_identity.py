"""How a local client proves it reached the very process its home's state file names.

A running gateway (or hub) holds an identity key that it wrote only to its 0600 state
file. Before a client sends a credential to the address in that file, it asks for proof:
it sends a fresh nonce in `X-Clawgate-Challenge` on `GET /readyz` and expects
`X-Clawgate-Proof` = HMAC-SHA256(key, nonce), hex. Whatever else listens on that port (a
process that took it after the gateway died, another user's server) cannot compute it,
so no credential goes there. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = [
    "IDENTITY_CHALLENGE_HEADER",
    "IDENTITY_PROOF_HEADER",
    "MAX_CHALLENGE_CHARS",
    "identity_proof",
    "proof_matches",
]

IDENTITY_CHALLENGE_HEADER: Final = "X-Clawgate-Challenge"
IDENTITY_PROOF_HEADER: Final = "X-Clawgate-Proof"
#: Longer challenges are not answered (a client sends 32 random bytes as hex).
MAX_CHALLENGE_CHARS: Final = 128


def identity_proof(key: str, challenge: str) -> str | None:
    """Return the proof for `challenge`, or None when the challenge is empty or too long."""
    if not challenge or len(challenge) > MAX_CHALLENGE_CHARS:
        return None
    return hmac.new(key.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def proof_matches(key: str, challenge: str, proof: str | None) -> bool:
    """Return whether `proof` answers `challenge` under `key`, compared in constant time."""
    expected = identity_proof(key, challenge)
    if expected is None or proof is None:
        return False
    return hmac.compare_digest(expected.encode(), proof.encode())
