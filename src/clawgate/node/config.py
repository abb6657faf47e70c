"""The node host's own config, `<home>/node/node.toml`: gateway, local exec policy, location.

The node host keeps everything under `<clawgate home>/node/`, apart from any gateway's state
and from the CLI's operator identity: its Ed25519 identity, its device tokens, this file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..files import write_atomic

__all__ = [
    "DEFAULT_ENV_ALLOW",
    "NODE_CONFIG_FILE",
    "ExecSection",
    "LocationSection",
    "NodeConfig",
    "NodeConfigError",
    "NodePaths",
    "load_node_config",
    "save_gateway_target",
]

NODE_CONFIG_FILE: Final = "node.toml"
#: Environment variables a `system.run` child may see (from the host or the request).
DEFAULT_ENV_ALLOW: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TZ", "USER", "TMPDIR")


class NodeConfigError(Exception):
    """`node.toml` cannot be read or is invalid; the message says where."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewayTarget(_Section):
    """`[gateway]`: where the node connects."""

    url: str = "ws://127.0.0.1:18789/"
    # Kept in this 0600 file so a login service needs no secret in its unit.
    token: str | None = None


class ExecSection(_Section):
    """`[exec]`: what this node itself lets `system.run` execute, whatever the gateway says."""

    # `allowlist` (default): only argv matching `allow`; `full`: anything; `deny`: nothing.
    mode: Literal["deny", "allowlist", "full"] = "allowlist"
    # Argv patterns of fnmatch globs, e.g. ["uname", "-a"] or ["git", "**"].
    allow: list[Annotated[list[str], Field(min_length=1)]] = Field(default_factory=list)
    env_allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV_ALLOW))
    timeout_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 60_000
    # stdout and stderr are each cut here (`truncated: true`).
    output_max_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 200_000


class LocationSection(_Section):
    """`[location]`: the fixed place `location.get` reports (a server does not move)."""

    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    accuracy_m: Annotated[float, Field(ge=0)] = 1000.0


class NodeConfig(_Section):
    """The whole `node.toml`."""

    display_name: str | None = None
    gateway: GatewayTarget = Field(default_factory=GatewayTarget)
    exec: ExecSection = Field(default_factory=ExecSection)
    location: LocationSection | None = None


@dataclass(frozen=True, slots=True)
class NodePaths:
    """Files of one node host, under `<clawgate home>/node/`."""

    root: Path

    @classmethod
    def in_home(cls, home: Path) -> NodePaths:
        """Return the node host's paths inside a clawgate home."""
        return cls(home / "node")

    @property
    def config(self) -> Path:
        """`node.toml`."""
        return self.root / NODE_CONFIG_FILE

    @property
    def log_file(self) -> Path:
        """Where the login service's output goes."""
        return self.root / "logs" / "node.log"


def load_node_config(path: Path) -> NodeConfig:
    """Read `node.toml`; a missing file gives the defaults.

    Raises:
        NodeConfigError: not TOML, or an unknown or invalid key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return NodeConfig()
    try:
        return NodeConfig.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(part) for part in error["loc"])
        raise NodeConfigError(f"{path}: invalid value for '{key}': {error['msg']}") from None


def save_gateway_target(path: Path, url: str, token: str | None) -> None:
    """Store the gateway URL (and token) in `node.toml`, keeping the rest; the file is 0600."""
    import tomlkit  # only `node install` writes the file

    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = tomlkit.document()
        document.add(tomlkit.comment("clawgate node host; see README 'Nodes'"))
    gateway = document.setdefault("gateway", tomlkit.table())
    gateway["url"] = url
    if token is not None:
        gateway["token"] = token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, tomlkit.dumps(document))
