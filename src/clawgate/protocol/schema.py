"""Build the protocol's JSON Schema (draft-07) from method and event declarations (spec §12)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import BaseModel, TypeAdapter

from .connect import ConnectParams
from .errors import ERROR_CODES
from .frames import ErrorShapeModel, EventFrame, RequestFrame, ResponseFrame
from .shapes import (
    HealthSummary,
    HelloOk3,
    HelloOk4,
    Policy,
    PresenceEntry,
    Snapshot,
)

__all__ = ["EventDeclaration", "MethodDeclaration", "build_schema", "dump_schema"]

_REF: Final = "#/definitions/{model}"


@dataclass(frozen=True, slots=True)
class MethodDeclaration:
    """What the schema needs to know about one method."""

    name: str
    params: Any
    result: Any
    role: str
    scope: str | None
    idempotency: str


@dataclass(frozen=True, slots=True)
class EventDeclaration:
    """What the schema needs to know about one event."""

    name: str
    payload: Any


class _Definitions:
    """Collect schemas of many types into one `definitions` table."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}

    def add(self, annotation: Any) -> dict[str, Any]:
        """Return the inline schema for `annotation`, hoisting its nested models."""
        schema = TypeAdapter(annotation).json_schema(ref_template=_REF)
        for name, nested in schema.pop("$defs", {}).items():
            self.table.setdefault(name, nested)
        return schema

    def add_named(self, name: str, annotation: Any, **extra: Any) -> None:
        """Store `annotation`'s schema under `name`, with `extra` keys merged in."""
        self.table[name] = {**self.add(annotation), **extra}


def build_schema(
    version: str,
    methods: Sequence[MethodDeclaration],
    events: Sequence[EventDeclaration],
) -> dict[str, Any]:
    """Return the whole-wire schema for `version` with the given methods and events."""
    defs = _Definitions()
    shared: tuple[type[BaseModel], ...] = (
        RequestFrame,
        ResponseFrame,
        EventFrame,
        ConnectParams,
        HelloOk3,
        HelloOk4,
        Snapshot,
        Policy,
        PresenceEntry,
        HealthSummary,
    )
    for model in shared:
        defs.add_named(model.__name__, model)
    defs.add_named("ErrorShape", ErrorShapeModel)
    defs.table["ErrorShape"]["properties"]["code"] = {"enum": list(ERROR_CODES), "type": "string"}
    for method in methods:
        defs.add_named(
            f"{method.name}.params",
            method.params,
            **{
                "x-role": method.role,
                "x-scope": method.scope,
                "x-idempotency": method.idempotency,
            },
        )
        defs.add_named(f"{method.name}.result", method.result)
    for event in events:
        defs.add_named(f"{event.name}.payload", event.payload)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": f"https://clawgate.dev/schema/protocol-{version}.json",
        "title": "clawgate gateway protocol",
        "oneOf": [
            {"$ref": "#/definitions/RequestFrame"},
            {"$ref": "#/definitions/ResponseFrame"},
            {"$ref": "#/definitions/EventFrame"},
        ],
        "definitions": dict(sorted(defs.table.items())),
    }


def dump_schema(schema: dict[str, Any]) -> bytes:
    """Serialise a schema byte-stably (sorted keys, two-space indent, final newline)."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
