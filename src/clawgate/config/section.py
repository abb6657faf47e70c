"""What every config table shares: unknown keys are refused, names are checked alike."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

__all__ = ["ENV_NAME", "Section"]

#: An environment variable's name (`token_env`, `password_env`, ...).
ENV_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Section(BaseModel):
    """A config table: a key it does not know is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")
