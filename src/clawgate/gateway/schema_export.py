"""The protocol schema this build serves and commits (spec §12)."""

from __future__ import annotations

from functools import cache

from .. import __version__
from .methods import build_registry

__all__ = ["protocol_schema_bytes"]


@cache
def protocol_schema_bytes() -> bytes:
    """Return the JSON Schema of every declared method and event, byte-stable per build."""
    # Loaded here: the schema's models (and every method module) are not needed until asked.
    from ..protocol.schema import build_schema, dump_schema

    registry = build_registry()
    schema = build_schema(
        __version__, registry.method_declarations(), registry.event_declarations()
    )
    return dump_schema(schema)
