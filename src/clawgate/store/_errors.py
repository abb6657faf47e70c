"""Exceptions raised by the state store.

Exception tree::

    StoreError              state.db cannot be used: I/O failure, failed migration, misuse
    ├── StoreClosedError    a call on a store that is not open (never opened, or closed)
    └── StoreTooNewError    the file's schema is newer than this code (configuration error)

Invariants: a corrupt file is never an error at open (it is moved aside and replaced, see
``StateStore.open``); no message ever contains row contents.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["StoreClosedError", "StoreError", "StoreTooNewError"]


class StoreError(Exception):
    """The state database cannot be used."""


class StoreClosedError(StoreError):
    """The store is not open."""


class StoreTooNewError(StoreError):
    """The database was written by a newer clawgate; refuse to touch it.

    Attributes:
        path: The database file.
        found: Its schema version.
        known: The newest schema version this code knows.
    """

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"{path} has schema version {found} but this clawgate knows only up to {known}; "
            "upgrade clawgate to use this database"
        )
        self.path = path
        self.found = found
        self.known = known
