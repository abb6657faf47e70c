"""Verify and sign Ed25519 device identities for the Gateway handshake (spec §4).

Pure: no I/O. The server side rebuilds the signed payload string from the received
ConnectParams (:class:`SignedFields`) and runs :func:`verify_device`, which applies the
checks of spec §4.4 in their fixed order and raises :class:`DeviceAuthError` on the first
failure. The client side signs with :class:`DeviceIdentity`; persisting it is not done here.

Invariants:
    - The check order of :func:`verify_device` is part of the wire contract: a request that
      fails several checks is always answered with the error of the earliest one.
    - Payload strings are joined with ``|`` without escaping, exactly as OpenClaw does; any
      change in normalisation breaks signatures made by other clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Final, Literal, Self

from .limits import DEVICE_SIGNATURE_SKEW_MS

# cryptography is imported where keys are used: loading its OpenSSL bindings costs the
# gateway several MB of resident memory, and most connections present no device.

__all__ = [
    "DEFAULT_MAX_SKEW_MS",
    "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    "DEVICE_AUTH_NONCE_MISMATCH",
    "DEVICE_AUTH_NONCE_REQUIRED",
    "DEVICE_AUTH_PUBLIC_KEY_INVALID",
    "DEVICE_AUTH_SIGNATURE_EXPIRED",
    "DEVICE_AUTH_SIGNATURE_INVALID",
    "DeviceAuthCode",
    "DeviceAuthError",
    "DeviceIdentity",
    "PayloadVersion",
    "SignedFields",
    "VerifiedDevice",
    "build_payload_v2",
    "build_payload_v3",
    "decode_public_key",
    "decode_signature",
    "device_id_for",
    "encode_public_key",
    "normalize_ascii_lower",
    "select_signed_token",
    "verify_device",
]

DeviceAuthCode = Literal[
    "DEVICE_AUTH_PUBLIC_KEY_INVALID",
    "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    "DEVICE_AUTH_SIGNATURE_EXPIRED",
    "DEVICE_AUTH_NONCE_REQUIRED",
    "DEVICE_AUTH_NONCE_MISMATCH",
    "DEVICE_AUTH_SIGNATURE_INVALID",
]
PayloadVersion = Literal["v3", "v2"]

DEVICE_AUTH_PUBLIC_KEY_INVALID: Final = "DEVICE_AUTH_PUBLIC_KEY_INVALID"
DEVICE_AUTH_DEVICE_ID_MISMATCH: Final = "DEVICE_AUTH_DEVICE_ID_MISMATCH"
DEVICE_AUTH_SIGNATURE_EXPIRED: Final = "DEVICE_AUTH_SIGNATURE_EXPIRED"
DEVICE_AUTH_NONCE_REQUIRED: Final = "DEVICE_AUTH_NONCE_REQUIRED"
DEVICE_AUTH_NONCE_MISMATCH: Final = "DEVICE_AUTH_NONCE_MISMATCH"
DEVICE_AUTH_SIGNATURE_INVALID: Final = "DEVICE_AUTH_SIGNATURE_INVALID"

DEFAULT_MAX_SKEW_MS: Final = DEVICE_SIGNATURE_SKEW_MS

# code -> (OpenClaw's details.reason, clawgate's message), spec §4.4.
_ERROR_TEXT: Final[dict[DeviceAuthCode, tuple[str, str]]] = {
    DEVICE_AUTH_PUBLIC_KEY_INVALID: ("device-public-key", "device public key invalid"),
    DEVICE_AUTH_DEVICE_ID_MISMATCH: ("device-id-mismatch", "device identity mismatch"),
    DEVICE_AUTH_SIGNATURE_EXPIRED: ("device-signature-stale", "device signature expired"),
    DEVICE_AUTH_NONCE_REQUIRED: ("device-nonce-missing", "device nonce required"),
    DEVICE_AUTH_NONCE_MISMATCH: ("device-nonce-mismatch", "device nonce mismatch"),
    DEVICE_AUTH_SIGNATURE_INVALID: ("device-signature", "device signature invalid"),
}

_PUBLIC_KEY_LEN: Final = 32
_SEED_LEN: Final = 32
_SIGNATURE_LEN: Final = 64
_SPKI_ED25519_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
_PEM_RE: Final = re.compile(
    r"-----BEGIN PUBLIC KEY-----(?P<body>[A-Za-z0-9+/=\s]*)-----END PUBLIC KEY-----"
)
_B64_STD_ONLY: Final = frozenset("+/")
_B64_URL_ONLY: Final = frozenset("-_")
# OpenClaw's server trims with JavaScript's String.prototype.trim, whose whitespace set differs
# from str.strip() (U+FEFF yes, U+001C-U+001F and U+0085 no); use JS's set so both agree.
_JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class DeviceAuthError(Exception):
    """Raise when a device identity fails a check of spec §4.4.

    Attributes:
        code: Stable ``details.code``, one of the ``DEVICE_AUTH_*`` constants.
        reason: OpenClaw's ``details.reason`` string for the code.
        message: Human-readable message safe to send to the client.
    """

    def __init__(self, code: DeviceAuthCode) -> None:
        """Build the error for ``code`` with its reason and message from spec §4.4."""
        reason, message = _ERROR_TEXT[code]
        super().__init__(message)
        self.code: DeviceAuthCode = code
        self.reason: str = reason
        self.message: str = message

    def __repr__(self) -> str:
        """Return a debugging representation naming the code."""
        return f"DeviceAuthError({self.code!r})"

    def __reduce__(self) -> tuple[type[DeviceAuthError], tuple[DeviceAuthCode]]:
        """Pickle by code, since ``args`` holds the message rather than the code."""
        return (type(self), (self.code,))


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedFields:
    """Hold the ConnectParams values that go into the signed payload string (spec §4.2).

    Values are as sent on the wire; normalisation happens in the ``build_payload_*``
    functions. ``token`` is the result of :func:`select_signed_token` (``None`` = absent,
    which signs the same as ``""``). ``scopes`` keeps the order sent.
    """

    device_id: str
    client_id: str
    client_mode: str
    role: str = "operator"
    scopes: tuple[str, ...] = ()
    signed_at_ms: int
    token: str | None = None
    nonce: str
    platform: str | None = None
    device_family: str | None = None


@dataclass(frozen=True, slots=True)
class VerifiedDevice:
    """Describe a device identity that passed every check of spec §4.4."""

    device_id: str
    public_key_raw: bytes
    payload_version: PayloadVersion


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Hold a client's Ed25519 key pair and sign payload strings with it.

    The seed is excluded from ``repr`` and equality so it does not leak into logs.
    """

    _seed: bytes = field(repr=False, compare=False)
    public_key_raw: bytes

    def __post_init__(self) -> None:
        """Reject a seed of the wrong length or a public key that does not belong to it."""
        if len(self._seed) != _SEED_LEN:
            raise ValueError("Ed25519 seed must be 32 bytes")
        if _public_key_from_seed(self._seed) != self.public_key_raw:
            raise ValueError("public key does not match seed")

    @classmethod
    def generate(cls) -> Self:
        """Create a new identity from a fresh random key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls.from_seed(seed)

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """Rebuild an identity from its 32-byte private seed.

        Args:
            seed: The raw 32-byte Ed25519 private key (RFC 8032 seed).

        Returns:
            The identity with its derived public key.

        Raises:
            ValueError: If ``seed`` is not 32 bytes.
        """
        if len(seed) != _SEED_LEN:
            raise ValueError("Ed25519 seed must be 32 bytes")
        return cls(bytes(seed), _public_key_from_seed(seed))

    @property
    def seed(self) -> bytes:
        """Return the raw 32-byte private seed, for persisting the identity."""
        return self._seed

    @property
    def device_id(self) -> str:
        """Return the device id: lowercase hex SHA-256 of the raw public key."""
        return device_id_for(self.public_key_raw)

    @property
    def public_key_b64url(self) -> str:
        """Return the public key as sent in ``device.publicKey``."""
        return encode_public_key(self.public_key_raw)

    def sign(self, payload: str) -> str:
        """Sign ``payload`` (UTF-8) and return the signature as unpadded base64url.

        Args:
            payload: A payload string from :func:`build_payload_v3` or :func:`build_payload_v2`.

        Returns:
            The value for ``device.signature``.
        """
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        signature = Ed25519PrivateKey.from_private_bytes(self._seed).sign(payload.encode("utf-8"))
        return _b64url_nopad(signature)


def _public_key_from_seed(seed: bytes) -> bytes:
    """Derive the raw 32-byte public key from a 32-byte seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def _b64url_nopad(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_decode_lenient(value: str) -> bytes | None:
    """Decode base64url or standard base64, padded or not; return None if malformed."""
    chars = set(value)
    if chars & _B64_STD_ONLY and chars & _B64_URL_ONLY:
        return None  # a mix of both alphabets is not any encoding a client produces
    text = value.replace("-", "+").replace("_", "/")
    if "=" not in text:
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode_pem_public_key(value: str) -> bytes | None:
    """Extract the raw key from a PEM Ed25519 SubjectPublicKeyInfo; return None otherwise."""
    match = _PEM_RE.fullmatch(value.strip())
    if match is None:
        return None
    body = "".join(match.group("body").split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_SPKI_ED25519_PREFIX) + _PUBLIC_KEY_LEN:
        return None
    if not der.startswith(_SPKI_ED25519_PREFIX):
        return None
    return der[len(_SPKI_ED25519_PREFIX) :]


def decode_public_key(value: str) -> bytes:
    """Decode ``device.publicKey`` to the raw 32-byte Ed25519 key.

    Accepts unpadded base64url (canonical), padded base64url, standard base64 and PEM
    SubjectPublicKeyInfo.

    Args:
        value: The ``device.publicKey`` string as sent.

    Returns:
        The raw 32-byte public key.

    Raises:
        DeviceAuthError: ``DEVICE_AUTH_PUBLIC_KEY_INVALID`` if it does not yield 32 bytes.
    """
    is_pem = value.lstrip().startswith("-----BEGIN")
    raw = _decode_pem_public_key(value) if is_pem else _b64_decode_lenient(value)
    if raw is None or len(raw) != _PUBLIC_KEY_LEN:
        raise DeviceAuthError(DEVICE_AUTH_PUBLIC_KEY_INVALID)
    return raw


def encode_public_key(raw: bytes) -> str:
    """Encode a raw 32-byte public key in the canonical form (unpadded base64url).

    Raises:
        ValueError: If ``raw`` is not 32 bytes.
    """
    if len(raw) != _PUBLIC_KEY_LEN:
        raise ValueError("Ed25519 public key must be 32 bytes")
    return _b64url_nopad(raw)


def device_id_for(raw_public_key: bytes) -> str:
    """Return the device id for a raw public key: lowercase hex SHA-256."""
    return hashlib.sha256(raw_public_key).hexdigest()


def decode_signature(value: str) -> bytes:
    """Decode ``device.signature`` to the raw 64-byte Ed25519 signature.

    Args:
        value: Unpadded base64url (canonical), padded base64url or standard base64.

    Returns:
        The raw 64-byte signature.

    Raises:
        DeviceAuthError: ``DEVICE_AUTH_SIGNATURE_INVALID`` if it does not yield 64 bytes.
    """
    raw = _b64_decode_lenient(value)
    if raw is None or len(raw) != _SIGNATURE_LEN:
        raise DeviceAuthError(DEVICE_AUTH_SIGNATURE_INVALID)
    return raw


def _js_trim(value: str) -> str:
    """Trim whitespace as JavaScript's ``String.prototype.trim`` does."""
    return value.strip(_JS_WHITESPACE)


def normalize_ascii_lower(value: str | None) -> str:
    """Trim, then lowercase ASCII A-Z only; ``None`` becomes ``""`` (spec §4.2)."""
    if value is None:
        return ""
    return _js_trim(value).translate(_ASCII_LOWER)


def select_signed_token(
    token: str | None, device_token: str | None, bootstrap_token: str | None
) -> str:
    """Return the first present of the three auth tokens, or ``""`` if none is present.

    A present empty string counts as present (spec §4.2).
    """
    for candidate in (token, device_token, bootstrap_token):
        if candidate is not None:
            return candidate
    return ""


def _common_parts(version: PayloadVersion, fields: SignedFields) -> list[str]:
    """Return the fields shared by v2 and v3, starting with the version tag."""
    return [
        version,
        fields.device_id,
        fields.client_id,
        fields.client_mode,
        fields.role,
        ",".join(fields.scopes),
        str(fields.signed_at_ms),
        fields.token if fields.token is not None else "",
        fields.nonce,
    ]


def build_payload_v3(fields: SignedFields) -> str:
    """Build the v3 signed payload string (spec §4.2)."""
    parts = _common_parts("v3", fields)
    parts.append(normalize_ascii_lower(fields.platform))
    parts.append(normalize_ascii_lower(fields.device_family))
    return "|".join(parts)


def build_payload_v2(fields: SignedFields) -> str:
    """Build the v2 signed payload string (spec §4.2)."""
    return "|".join(_common_parts("v2", fields))


def verify_device(
    *,
    device_id: str,
    public_key: str,
    signature: str,
    signed_at_ms: int,
    nonce: str,
    challenge_nonce: str,
    fields: SignedFields,
    now_ms: int,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
) -> VerifiedDevice:
    """Verify a ``device`` block in the order of spec §4.4.

    Args:
        device_id: ``device.id`` as sent.
        public_key: ``device.publicKey`` as sent.
        signature: ``device.signature`` as sent.
        signed_at_ms: ``device.signedAt``.
        nonce: ``device.nonce`` as sent (untrimmed).
        challenge_nonce: The nonce of this connection's ``connect.challenge``.
        fields: The values the payload string is rebuilt from; its ``device_id``,
            ``signed_at_ms`` and ``nonce`` must equal the arguments above.
        now_ms: The server's current time in ms (injected clock).
        max_skew_ms: Allowed ``|now_ms - signed_at_ms|``.

    Returns:
        The verified device, with its id lowercased and the payload version that verified.

    Raises:
        DeviceAuthError: On the first failing check, with its §4.4 code.
        ValueError: If ``fields`` disagrees with the ``device`` arguments (a caller bug).
    """
    if (fields.device_id, fields.signed_at_ms, fields.nonce) != (device_id, signed_at_ms, nonce):
        raise ValueError("fields must be built from the same device block")

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    # 1. The key decodes to 32 bytes.
    raw_key = decode_public_key(public_key)
    try:
        key = Ed25519PublicKey.from_public_bytes(raw_key)
    except ValueError:
        raise DeviceAuthError(DEVICE_AUTH_PUBLIC_KEY_INVALID) from None
    # 2. The id is the key's SHA-256 hex, compared case-insensitively.
    expected_id = device_id_for(raw_key)
    if device_id.translate(_ASCII_LOWER) != expected_id:
        raise DeviceAuthError(DEVICE_AUTH_DEVICE_ID_MISMATCH)
    # 3. signedAt is within the allowed clock skew.
    if abs(now_ms - signed_at_ms) > max_skew_ms:
        raise DeviceAuthError(DEVICE_AUTH_SIGNATURE_EXPIRED)
    # 4. and 5. The trimmed nonce is present and is this connection's challenge nonce.
    trimmed_nonce = _js_trim(nonce)
    if not trimmed_nonce:
        raise DeviceAuthError(DEVICE_AUTH_NONCE_REQUIRED)
    if trimmed_nonce != challenge_nonce:
        raise DeviceAuthError(DEVICE_AUTH_NONCE_MISMATCH)
    # 6. The signature verifies over the v3 string, else over the v2 string.
    raw_signature = decode_signature(signature)
    candidates: tuple[tuple[PayloadVersion, str], ...] = (
        ("v3", build_payload_v3(fields)),
        ("v2", build_payload_v2(fields)),
    )
    for version, payload in candidates:
        try:
            key.verify(raw_signature, payload.encode("utf-8"))
        except InvalidSignature:
            continue
        return VerifiedDevice(
            device_id=expected_id, public_key_raw=raw_key, payload_version=version
        )
    raise DeviceAuthError(DEVICE_AUTH_SIGNATURE_INVALID)
