"""The client's identities on disk: its device key pair, its device tokens, its TLS pin.

Files, under the clawgate home (``$CLAWGATE_HOME``, default ``~/.clawgate``)::

    identity/                 0700
    ├── device.json           0600  {"version":1, "deviceId", "publicKey", "seed"}
    └── device-auth.json      0600  {"version":1, "deviceId", "tokens":{role:{token, scopes,
                                                                          issuedAtMs}}}

Invariants:
    - The identity is created once and never replaced: a file that cannot be read or does
      not match its own seed raises :class:`IdentityError`. A new key is a new device to the
      gateway, so regenerating silently would throw away the device's pairing.
    - Both files are written to a temporary file in the same directory and renamed into
      place, so a reader never sees a partial file. The identity file is linked into place
      rather than renamed, so two processes creating it at once agree on one key.
    - ``device-auth.json`` is a cache of what the gateway issued: a token file that is
      missing, unreadable, corrupt or written for another device counts as empty (logged),
      because the gateway reissues tokens on the next paired connect.
    - Neither the seed nor a token value ever appears in a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from ..files import PRIVATE_MODE, write_atomic
from ..protocol.device_auth import DeviceAuthError, DeviceIdentity, decode_public_key
from ._errors import IdentityError

__all__ = [
    "DEVICE_AUTH_FILE",
    "DEVICE_IDENTITY_FILE",
    "DeviceTokenStore",
    "StoredToken",
    "load_or_create_identity",
    "parse_tls_fingerprint",
]

_LOGGER = logging.getLogger(__name__)

#: Paths of the two files relative to the clawgate home.
DEVICE_IDENTITY_FILE: Final = Path("identity", "device.json")
DEVICE_AUTH_FILE: Final = Path("identity", "device-auth.json")

_FILE_VERSION: Final = 1
_DIR_MODE: Final = 0o700
_SEED_LEN: Final = 32

_FINGERPRINT_PLAIN: Final = re.compile(r"[0-9A-Fa-f]{64}")
_FINGERPRINT_COLONS: Final = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A device token the gateway issued for one role (spec §5.6).

    The token value is excluded from ``repr`` so it does not leak into logs.
    """

    role: str
    token: str = field(repr=False)
    scopes: tuple[str, ...]
    issued_at_ms: int


# -- the device identity --------------------------------------------------------------------


def load_or_create_identity(home: Path) -> DeviceIdentity:
    """Return the device identity kept under ``home``, creating it on first use.

    Args:
        home: The clawgate home directory; created (0700) if missing.

    Returns:
        The identity stored in ``home/identity/device.json``.

    Raises:
        IdentityError: The file exists but cannot be read, is corrupt, or its ``deviceId``
            or ``publicKey`` do not belong to its seed; or it cannot be created.
    """
    path = home / DEVICE_IDENTITY_FILE
    existing = _load_identity(path)
    if existing is not None:
        return existing
    identity = DeviceIdentity.generate()
    document = {
        "version": _FILE_VERSION,
        "deviceId": identity.device_id,
        "publicKey": identity.public_key_b64url,
        "seed": _b64url(identity.seed),
    }
    try:
        home.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        _ensure_private_dir(path.parent)
        created = write_atomic(path, _dump(document), replace=False)
    except OSError as exc:
        raise IdentityError(path, f"cannot create device identity: {_reason(exc)}") from exc
    if not created:  # another process created it first: use theirs, not ours
        existing = _load_identity(path)
        if existing is None:
            raise IdentityError(path, "device identity vanished while it was being created")
        return existing
    _LOGGER.info("created device identity %s in %s", identity.device_id, path)
    return identity


def _load_identity(path: Path) -> DeviceIdentity | None:
    """Read and check the identity file; return None if there is none."""
    restore = "restore it, or delete it to become a new (unpaired) device"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IdentityError(path, f"cannot read device identity: {_reason(exc)}") from exc
    _tighten_mode(path, PRIVATE_MODE)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise IdentityError(path, f"device identity is not valid JSON; {restore}") from None
    if not isinstance(document, dict):
        raise IdentityError(path, f"device identity is not a JSON object; {restore}")
    if document.get("version") != _FILE_VERSION:
        raise IdentityError(
            path, f"unsupported device identity version {document.get('version')!r}"
        )
    device_id, public_key, seed_text = (
        document.get(key) for key in ("deviceId", "publicKey", "seed")
    )
    if not (
        isinstance(device_id, str) and isinstance(public_key, str) and isinstance(seed_text, str)
    ):
        raise IdentityError(path, f"device identity lacks deviceId, publicKey or seed; {restore}")
    seed = _b64decode(seed_text)
    if seed is None or len(seed) != _SEED_LEN:
        raise IdentityError(path, f"device identity seed is not 32 bytes of base64url; {restore}")
    identity = DeviceIdentity.from_seed(seed)
    try:
        public_key_raw = decode_public_key(public_key)
    except DeviceAuthError:
        public_key_raw = None
    if public_key_raw != identity.public_key_raw:
        raise IdentityError(path, f"device identity publicKey does not match its seed; {restore}")
    if device_id.lower() != identity.device_id:
        raise IdentityError(path, f"device identity deviceId does not match its seed; {restore}")
    return identity


# -- device tokens --------------------------------------------------------------------------


class DeviceTokenStore:
    """Keep the device tokens the gateway issued to one device, one per role.

    Each call reads the file afresh, so a token stored by another process (or by the last
    connection) is used on the next connect. Writes from several processes are not merged
    under a lock: the last writer wins, and a lost token is reissued by the gateway.
    """

    def __init__(self, path: Path, device_id: str) -> None:
        """Bind the store to its file and to the device whose tokens it holds.

        Args:
            path: The token file, normally ``home/identity/device-auth.json``.
            device_id: The device id of the identity the tokens belong to.
        """
        self._path = path
        self._device_id = device_id.lower()
        self._lock = threading.Lock()  # read-modify-write from worker threads

    @classmethod
    def in_home(cls, home: Path, identity: DeviceIdentity) -> DeviceTokenStore:
        """Return the store of ``identity`` kept under the clawgate home ``home``."""
        return cls(home / DEVICE_AUTH_FILE, identity.device_id)

    def __repr__(self) -> str:
        return f"<DeviceTokenStore {self._path} device {self._device_id[:12]}>"

    @property
    def path(self) -> Path:
        """Return the token file."""
        return self._path

    @property
    def device_id(self) -> str:
        """Return the device id the stored tokens belong to."""
        return self._device_id

    def get(self, role: str) -> StoredToken | None:
        """Return the stored token for ``role``, or None if there is none for this device."""
        with self._lock:
            return self._read().get(role)

    def put(self, role: str, token: str, scopes: Iterable[str], issued_at_ms: int) -> StoredToken:
        """Store ``token`` for ``role``, replacing the one held before.

        Tokens of other roles are kept; tokens written for another device are dropped.

        Returns:
            The stored token.

        Raises:
            IdentityError: The file could not be written.
        """
        stored = StoredToken(role, token, tuple(scopes), issued_at_ms)
        with self._lock:
            tokens = self._read()
            tokens[role] = stored
            self._write(tokens)
        return stored

    def forget(self, role: str) -> bool:
        """Remove the token for ``role``; return False if there was none.

        Raises:
            IdentityError: The file could not be written.
        """
        with self._lock:
            tokens = self._read()
            if tokens.pop(role, None) is None:
                return False
            self._write(tokens)
        return True

    def _read(self) -> dict[str, StoredToken]:
        """Return this device's tokens by role; an unusable file counts as empty."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            _LOGGER.warning("ignoring device tokens in %s: %s", self._path, _reason(exc))
            return {}
        _tighten_mode(self._path, PRIVATE_MODE)
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            _LOGGER.warning("ignoring device tokens in %s: not valid JSON", self._path)
            return {}
        if not isinstance(document, dict) or document.get("version") != _FILE_VERSION:
            _LOGGER.warning("ignoring device tokens in %s: unknown format", self._path)
            return {}
        device_id = document.get("deviceId")
        if not isinstance(device_id, str) or device_id.lower() != self._device_id:
            _LOGGER.info("ignoring device tokens in %s: written for another device", self._path)
            return {}
        entries = document.get("tokens")
        if not isinstance(entries, dict):
            return {}
        tokens: dict[str, StoredToken] = {}
        for role, entry in entries.items():
            stored = _parse_token(role, entry)
            if stored is None:
                _LOGGER.warning("ignoring malformed %r device token in %s", role, self._path)
                continue
            tokens[role] = stored
        return tokens

    def _write(self, tokens: dict[str, StoredToken]) -> None:
        """Replace the file with ``tokens``."""
        document = {
            "version": _FILE_VERSION,
            "deviceId": self._device_id,
            "tokens": {
                role: {
                    "token": stored.token,
                    "scopes": list(stored.scopes),
                    "issuedAtMs": stored.issued_at_ms,
                }
                for role, stored in tokens.items()
            },
        }
        try:
            _ensure_private_dir(self._path.parent)
            write_atomic(self._path, _dump(document))
        except OSError as exc:
            raise IdentityError(self._path, f"cannot write device tokens: {_reason(exc)}") from exc


def _parse_token(role: Any, entry: Any) -> StoredToken | None:
    """Return the StoredToken of one ``tokens`` entry, or None if it is malformed."""
    if not isinstance(role, str) or not isinstance(entry, dict):
        return None
    token = entry.get("token")
    scopes = entry.get("scopes")
    issued_at = entry.get("issuedAtMs")
    if not isinstance(token, str) or not token:
        return None
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        return None
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        return None
    return StoredToken(role, token, tuple(scopes), issued_at)


# -- the server's certificate pin -----------------------------------------------------------


def parse_tls_fingerprint(value: str) -> bytes:
    """Decode a pinned certificate fingerprint: SHA-256 of the certificate's DER.

    Args:
        value: 64 hex digits, or 32 colon-separated pairs (``AB:CD:…``); any case;
            surrounding whitespace is ignored.

    Returns:
        The 32-byte digest.

    Raises:
        ValueError: ``value`` is not in one of those forms.
    """
    text = value.strip()
    if not (_FINGERPRINT_PLAIN.fullmatch(text) or _FINGERPRINT_COLONS.fullmatch(text)):
        raise ValueError(
            "tls_fingerprint must be the SHA-256 of the server certificate: 64 hex digits, "
            "optionally as colon-separated pairs (AB:CD:...)"
        )
    return bytes.fromhex(text.replace(":", ""))


# -- files ----------------------------------------------------------------------------------


def _dump(document: dict[str, Any]) -> bytes:
    """Return ``document`` as indented JSON with a final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def _b64url(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Decode base64url (or standard base64), padded or not; None if malformed."""
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        return None


def _reason(exc: OSError) -> str:
    """Return an OSError's description without repeating the path."""
    return exc.strerror or type(exc).__name__


def _ensure_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, or tighten an existing one to 0700."""
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    _tighten_mode(path, _DIR_MODE)


def _tighten_mode(path: Path, mode: int) -> None:
    """Remove group and other permissions from ``path`` if it has any."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            os.chmod(path, mode)
            _LOGGER.warning("reset permissions of %s from %04o to %04o", path, current, mode)
    except OSError as exc:
        _LOGGER.warning("cannot check permissions of %s: %s", path, _reason(exc))
