"""Where the control link goes and how it authenticates (light: no aiohttp, no models)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LinkSettings"]


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Where the hub is and how to authenticate (``[cloud]`` and ``[auth]`` of config.toml)."""

    url: str
    api_key: str
    allow_insecure: bool = False

    def __repr__(self) -> str:
        return f"LinkSettings(url={self.url!r}, api_key=<hidden>)"
