"""Where the canvas host listens and what it serves (`[canvas]` of config.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_CANVAS_PORT", "CanvasSettings"]

DEFAULT_CANVAS_PORT: Final = 18793


@dataclass(frozen=True, slots=True)
class CanvasSettings:
    """A canvas host that runs: its root folder, address and whether pages live-reload."""

    root: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_CANVAS_PORT
    live_reload: bool = True
