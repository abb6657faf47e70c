"""The hub's settings: ``hub.toml`` plus environment overrides (control-plane spec §7).

Precedence: command-line flag, then environment, then file, then default. A missing file is
created with a random admin token (mode 0600); an existing one must be private.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ..config import check_config_permissions
from ..files import write_atomic

# Mirrors of clawgate.protocol.control_link's defaults (importing it would load its models
# into every `clawgate` command); tests/unit/test_hub_settings.py checks they agree.
DEFAULT_HEARTBEAT_MS: Final = 20_000
DEFAULT_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HubSettings",
    "HubSettingsError",
    "decode_secrets_key",
    "default_config_path",
    "load_settings",
    "read_settings_file",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 18800
CONFIG_NAME: Final = "hub.toml"
DB_NAME: Final = "hub.db"
SECRETS_KEY_BYTES: Final = 32
#: How often a held connection re-checks the database for undelivered items (spec §7.2).
DEFAULT_SWEEP_INTERVAL_S: Final = 5.0

ENV_LISTEN: Final = "CLAWGATE_HUB_LISTEN"
ENV_DATABASE_URL: Final = "CLAWGATE_HUB_DATABASE_URL"
ENV_BUS_URL: Final = "CLAWGATE_HUB_BUS_URL"
ENV_ADMIN_TOKEN: Final = "CLAWGATE_HUB_ADMIN_TOKEN"
ENV_SECRETS_KEY: Final = "CLAWGATE_HUB_SECRETS_KEY"
#: Comma-separated keys that sealed values may still be under, during a rotation.
ENV_PREVIOUS_SECRETS_KEYS: Final = "CLAWGATE_HUB_PREVIOUS_SECRETS_KEYS"
_POSTGRES_SCHEMES: Final = frozenset({"postgres", "postgresql"})
_BUS_SCHEMES: Final = frozenset({"nats", "tls"})

_KNOWN_KEYS: Final = frozenset(
    {
        "listen",
        "admin_token",
        "database_url",
        "bus_url",
        "secrets_key",
        "previous_secrets_keys",
        "heartbeat_interval_ms",
        "max_message_bytes",
        "sweep_interval_s",
    }
)
_TEMPLATE: Final = """\
# clawgate hub settings (control-plane spec §7). Keep this file private: mode 0600.
# Environment overrides: CLAWGATE_HUB_LISTEN, CLAWGATE_HUB_DATABASE_URL,
# CLAWGATE_HUB_ADMIN_TOKEN, CLAWGATE_HUB_SECRETS_KEY.
listen = "{listen}"
admin_token = "{token}"
# database_url = "sqlite:///path/to/hub.db"   # default: hub.db next to this file
# Several instances behind a load balancer (docs/hub-scale-out.md): PostgreSQL and NATS,
# and a secrets_key shared by every instance.
# database_url = "postgresql://clawgate@db.example/clawgate"
# bus_url = "nats://127.0.0.1:4222"
# secrets_key = "..."   # 32 random bytes in base64 (openssl rand -base64 32); without it
#                       # secret values live in hub memory only and a restart loses them
# heartbeat_interval_ms = 20000
"""


class HubSettingsError(Exception):
    """The hub's settings cannot be used; the message says how to fix them."""


@dataclass(frozen=True, slots=True)
class HubSettings:
    """Everything ``HubServer`` needs to start."""

    config_path: Path
    db_path: Path
    admin_token: str = field(repr=False)
    #: A PostgreSQL URL (several instances); None keeps the state in ``db_path`` (SQLite).
    database_url: str | None = field(default=None, repr=False)
    #: A NATS URL routing wake-ups between instances; None routes in process.
    bus_url: str | None = field(default=None, repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    secrets_key: bytes | None = field(default=None, repr=False)
    #: Keys sealed values may still be under while a rotation re-seals them (never sealing).
    previous_secrets_keys: tuple[bytes, ...] = field(default=(), repr=False)
    heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_MS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    sweep_interval_s: float = DEFAULT_SWEEP_INTERVAL_S
    #: True when this run created the file (and its admin token).
    generated: bool = False

    @property
    def clustered(self) -> bool:
        """True when the state is in PostgreSQL, where other instances may share it."""
        return self.database_url is not None

    @property
    def database(self) -> str:
        """Where the state lives, for messages (never with a password)."""
        if self.database_url is None:
            return str(self.db_path)
        from ..store.hub_pg import redact_url

        return redact_url(self.database_url)

    def with_port(self, port: int) -> HubSettings:
        """Return a copy listening on ``port``."""
        return replace(self, port=port)


def default_config_path(home: Path) -> Path:
    """Return ``<home>/hub.toml``."""
    return home / CONFIG_NAME


def decode_secrets_key(text: str) -> bytes:
    """Decode a base64 secrets key of 32 bytes.

    Raises:
        HubSettingsError: the key is not base64 of exactly 32 bytes (never echoes the key).
    """
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(padded.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == SECRETS_KEY_BYTES:
            return raw
    raise HubSettingsError(
        "the hub secrets key must be 32 random bytes in base64; create one with "
        "`openssl rand -base64 32`"
    )


def read_settings_file(path: Path) -> dict[str, Any]:
    """Read ``hub.toml``; a missing file reads as empty.

    Raises:
        HubSettingsError: the file is not private, not TOML, or not a table.
    """
    try:
        check_config_permissions(path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except Exception as exc:
        raise HubSettingsError(str(exc)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HubSettingsError(f"{path} is not valid TOML ({exc}); fix or delete it") from None


def _create_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    write_atomic(path, _TEMPLATE.format(listen=f"{DEFAULT_HOST}:{DEFAULT_PORT}", token=token))


def _listen(value: object, where: str) -> tuple[str, int]:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise HubSettingsError(f"{where} must be host:port such as 127.0.0.1:18800 (got {text!r})")
    return host.strip("[]"), int(port)


def _database(url: str, where: str) -> Path | str:
    """Return a SQLite file path, or a PostgreSQL URL as given."""
    if "://" in url and urlsplit(url).scheme in _POSTGRES_SCHEMES:
        return url
    return _db_path(url, where)


def _db_path(url: str, where: str) -> Path:
    if "://" not in url:
        return Path(url).expanduser()
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise HubSettingsError(
            f"{where} uses {parts.scheme!r}; give postgresql://user@host/db (several "
            "instances), sqlite:///path/to/hub.db or a file path"
        )
    if not parts.path:
        raise HubSettingsError(f"{where} needs a file path, e.g. sqlite:///var/lib/hub.db")
    # sqlite:///abs and sqlite:////abs both name /abs.
    return Path("/" + parts.path.lstrip("/"))


def _previous_keys(env_value: str | None, file_value: object) -> tuple[bytes, ...]:
    if env_value:
        texts = [t for t in env_value.split(",") if t.strip()]
    elif file_value is None:
        texts = []
    elif isinstance(file_value, list) and all(isinstance(t, str) for t in file_value):
        texts = list(file_value)
    else:
        raise HubSettingsError("hub.toml key previous_secrets_keys must be a list of keys")
    return tuple(decode_secrets_key(t) for t in texts)


def _positive_int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise HubSettingsError(f"hub.toml key {key} must be a positive integer (got {value!r})")
    return value


def load_settings(
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    db: Path | None = None,
    port: int | None = None,
    database_url: str | None = None,
    bus_url: str | None = None,
) -> HubSettings:
    """Read ``config_path`` (creating it on first run) and apply env and flag overrides.

    Raises:
        HubSettingsError: a value is wrong; the message names it and the fix.
    """
    env = os.environ if environ is None else environ
    generated = not config_path.exists()
    if generated:
        _create_file(config_path)
    data = read_settings_file(config_path)
    for key in sorted(set(data) - _KNOWN_KEYS):
        logger.warning("%s: unknown key %r ignored", config_path, key)
    host, listen_port = _listen(data.get("listen", f"{DEFAULT_HOST}:{DEFAULT_PORT}"), "listen")
    if env.get(ENV_LISTEN):
        host, listen_port = _listen(env[ENV_LISTEN], ENV_LISTEN)
    database: Path | str = config_path.parent / DB_NAME
    if db is not None:
        database = db
    elif database_url:
        database = _database(database_url, "--database-url")
    elif env.get(ENV_DATABASE_URL):
        database = _database(env[ENV_DATABASE_URL], ENV_DATABASE_URL)
    elif data.get("database_url"):
        database = _database(str(data["database_url"]), "database_url")
    pg_url = database if isinstance(database, str) else None
    db_path = database if isinstance(database, Path) else config_path.parent / DB_NAME
    bus = bus_url or env.get(ENV_BUS_URL) or data.get("bus_url") or None
    if bus is not None:
        bus = str(bus)
        if pg_url is None:
            raise HubSettingsError(
                "--bus-url (bus_url, CLAWGATE_HUB_BUS_URL) needs a PostgreSQL --database-url: "
                "instances share their state only through PostgreSQL, and a single hub on "
                "SQLite routes in process and refuses a bus; give both, or neither"
            )
        if urlsplit(bus).scheme not in _BUS_SCHEMES:
            raise HubSettingsError(
                f"the bus URL must be nats://host:port (got scheme {urlsplit(bus).scheme!r})"
            )
    token = env.get(ENV_ADMIN_TOKEN) or data.get("admin_token")
    if not isinstance(token, str) or len(token) < 16:
        raise HubSettingsError(
            f"no admin token of at least 16 characters: set admin_token in {config_path} "
            f"or {ENV_ADMIN_TOKEN}"
        )
    key_text = env.get(ENV_SECRETS_KEY) or data.get("secrets_key")
    if pg_url is not None and not key_text:
        raise HubSettingsError(
            f"a hub on PostgreSQL needs a secrets key ({ENV_SECRETS_KEY} or secrets_key), the "
            "same on every instance: a secret written through one instance must be readable "
            "by the others; create one with `openssl rand -base64 32`"
        )
    previous = _previous_keys(env.get(ENV_PREVIOUS_SECRETS_KEYS), data.get("previous_secrets_keys"))
    sweep = data.get("sweep_interval_s", DEFAULT_SWEEP_INTERVAL_S)
    if not isinstance(sweep, int | float) or isinstance(sweep, bool) or sweep <= 0:
        raise HubSettingsError(f"hub.toml key sweep_interval_s must be positive (got {sweep!r})")
    return HubSettings(
        config_path=config_path,
        db_path=db_path.absolute(),
        admin_token=token,
        database_url=pg_url,
        bus_url=bus,
        host=host,
        port=listen_port if port is None else port,
        secrets_key=decode_secrets_key(str(key_text)) if key_text else None,
        previous_secrets_keys=previous,
        heartbeat_interval_ms=_positive_int(data, "heartbeat_interval_ms", DEFAULT_HEARTBEAT_MS),
        max_message_bytes=_positive_int(data, "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
        sweep_interval_s=float(sweep),
        generated=generated,
    )
