"""Config writes from operators and reloads (SIGHUP): one writer at a time, applied live.

`config.set`/`config.patch` (spec §10.9) and `reload()` apply the same keys live (see
`config_file._HOT_KEYS`); every other change waits for a restart, and a reload names
each such key in the log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from ..config import ClawgateConfig, ConfigError, load_config
from ..config_file import read_snapshot, restart_keys
from ..protocol.auth import AuthMode
from ..protocol.handshake import CLOSE_AUTH_CHANGED
from ..protocol.limits import CONFIG_WRITE_WINDOW_MS, CONFIG_WRITES_PER_WINDOW
from ..protocol.ratelimit import SlidingWindow
from ..store import StateStore, gateway_state
from .access import GatewayAccess
from .heartbeat import HeartbeatRunner, heartbeat_settings

__all__ = ["AuthSocket", "ConfigService"]

logger = logging.getLogger(__name__)

HASH_KEY: str = "config_hash_key"


class AuthSocket(Protocol):
    """A connection as a secret change sees it: how it logged in, and how to close it."""

    @property
    def via_device_token(self) -> bool: ...
    def close(self, code: int, reason: str) -> None:
        """Close the socket with `code`."""

    def close_after_answer(self, code: int, reason: str) -> None:
        """Close once the answer to the request being handled is queued."""


class ConfigService:
    """The config file, its write lock and rate limit, and what a write changes live."""

    def __init__(
        self,
        *,
        path: Path | None,
        store: StateStore | None,
        access: GatewayAccess,
        heartbeats: HeartbeatRunner,
        sockets: Callable[[], Iterable[AuthSocket]],
    ) -> None:
        """Serve `path`; a write updates `access` and `heartbeats` and closes `sockets()`."""
        self.path = path
        self._store = store
        self._access = access
        self._heartbeats = heartbeats
        self._sockets = sockets
        # Replaced by a per-install key from the state store when one is attached.
        self.hash_key = secrets.token_bytes(32)
        self.lock = asyncio.Lock()
        self.writes = SlidingWindow(CONFIG_WRITES_PER_WINDOW, CONFIG_WRITE_WINDOW_MS)
        # The file as the process started with it: what restart-only keys still run with.
        self._started_with = ClawgateConfig()

    @property
    def auth_pinned(self) -> bool:
        """Whether the shared secret came from a flag or the environment."""
        return self._access.auth_pinned

    async def load(self) -> None:
        """Remember the file as started; use this install's hash key across restarts."""
        if self.path is not None:
            snapshot = await asyncio.to_thread(read_snapshot, self.path)
            if snapshot.config is not None:
                self._started_with = snapshot.config
        store = self._store
        if store is None:
            return
        key = await store.read(lambda conn: gateway_state.get_value(conn, HASH_KEY))
        if key is None:
            key = secrets.token_hex(32)
            new_key = key
            await store.write(lambda conn: gateway_state.set_value(conn, HASH_KEY, new_key))
        self.hash_key = bytes.fromhex(key)

    def secret_issues(self, config: ClawgateConfig) -> list[dict[str, str]]:
        """A secret-based auth mode needs its secret somewhere the gateway can read."""
        auth = config.gateway.auth
        if self.auth_pinned:
            return []
        if auth.mode is AuthMode.TOKEN and not auth.token:
            return [{"path": "gateway.auth.token", "message": "token auth needs a token"}]
        if auth.mode is AuthMode.PASSWORD and not auth.password:
            return [{"path": "gateway.auth.password", "message": "password auth needs a password"}]
        return []

    async def reload(self) -> bool:
        """Re-read the file and apply what applies live; return whether it was applied.

        A file that does not validate is refused with one line in the log, and the running
        config stays; each changed key that needs a restart gets one log line.
        """
        path = self.path
        if path is None:
            logger.warning("config reload ignored: this gateway runs without a config file")
            return False
        async with self.lock:
            try:
                # Parsing and validating is CPU work: off the loop (issue 17 point 4).
                config = await asyncio.to_thread(load_config, path)
            except (ConfigError, OSError) as exc:
                logger.error("config reload refused, running config kept: %s", exc)
                return False
            issues = self.secret_issues(config)
            if issues:
                issue = issues[0]
                logger.error(
                    "config reload refused, running config kept: %s: %s: %s",
                    path,
                    issue["path"],
                    issue["message"],
                )
                return False
            for key in restart_keys(self._started_with, config):
                logger.warning("config reload: %s changed; it applies at the next restart", key)
            self.apply(config)
        logger.info("config reloaded from %s", path)
        return True

    def apply(self, config: ClawgateConfig, changed_by: object = None) -> None:
        """Apply the settings that take effect without a restart.

        A new shared secret closes every connection that logged in with the old one
        (4001); `changed_by` is closed only after its own answer was queued.
        """
        self._access.allowed_origins = frozenset(config.gateway.allowed_origins)
        self._heartbeats.configure(heartbeat_settings(config))
        logging.getLogger("clawgate").setLevel(config.log.level.upper())
        auth = config.gateway.auth
        secret = auth.token if auth.mode is AuthMode.TOKEN else auth.password
        if not self._access.replace_secret(auth.mode, secret):
            return
        logger.warning("shared secret changed; closing connections that used the old one")
        for connection in self._sockets():
            if connection.via_device_token:
                continue  # device tokens stay valid when the shared secret changes
            if connection is changed_by:
                connection.close_after_answer(CLOSE_AUTH_CHANGED, "gateway auth changed")
            else:
                connection.close(CLOSE_AUTH_CHANGED, "gateway auth changed")
