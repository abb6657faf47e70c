"""Declared method handlers and the table that lists them (STYLE §3).

A handler is declared once with `@method(...)`: its name, params model, result type,
role, scope and idempotency. The registry builds `features.methods`, the JSON Schema and
the dispatcher's checks from those declarations, so they cannot drift apart.

A method may also be listed by name and place only (`declare`): its module, with its
params and result models, is imported on the method's first call, so an idle gateway
does not hold the models of methods nobody called. An event's payload model may be such
a `Deferred` too; only the schema reads it. The place is checked when it is loaded: the
handler found there must declare the name it was listed under.

Handlers that never wait are plain functions and run inline in the reader, sparing a
task per request; handlers that wait are coroutines and get a task each.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from ..protocol.events import EventSpec
from ..protocol.scopes import MethodRole

if TYPE_CHECKING:
    from ..protocol.schema import EventDeclaration, MethodDeclaration
    from .context import CallContext

__all__ = [
    "Deferred",
    "Idempotency",
    "MethodRegistry",
    "MethodSpec",
    "method",
]

_UNSET: Any = object()

# A plain function that returns the result, or a coroutine function that returns it.
Handler = Callable[["CallContext", Any], Any]
F = TypeVar("F", bound=Handler)


class Idempotency(StrEnum):
    """Whether a method takes an `idempotencyKey`."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One method's declaration and handler."""

    name: str
    handler: Handler
    params: type[BaseModel]
    result: Any
    role: MethodRole
    scope: str | None
    idempotency: Idempotency
    # True when the handler applies the idempotency rules itself (`agent`, `chat.send`:
    # their duplicates get run-specific answers, not the generic cached response).
    handler_dedupes: bool = False
    is_async: bool = field(init=False)
    # Params parsed from `{}` on first use, then reused when a request sends none.
    _empty: Any = field(init=False, default=_UNSET, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Derive how to call the handler."""
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))

    def empty_params(self) -> BaseModel | None:
        """Return the params parsed from `{}`, or None when `{}` is not valid params."""
        empty = self._empty
        if empty is _UNSET:
            try:
                empty = self.params.model_validate({})
            except ValueError:
                empty = None
            object.__setattr__(self, "_empty", empty)
        return empty  # type: ignore[no-any-return]

    def declaration(self) -> MethodDeclaration:
        """Return what the schema needs about this method."""
        from ..protocol.schema import MethodDeclaration  # the schema's models load when asked

        return MethodDeclaration(
            self.name,
            self.params,
            self.result,
            self.role.value,
            self.scope,
            self.idempotency.value,
        )


def method(
    name: str,
    *,
    params: type[BaseModel],
    result: Any,
    role: MethodRole = MethodRole.OPERATOR,
    scope: str | None = None,
    idempotency: Idempotency = Idempotency.NONE,
    handler_dedupes: bool = False,
) -> Callable[[F], F]:
    """Declare `name` as a gateway method served by the decorated coroutine."""

    def decorate(handler: F) -> F:
        if idempotency is not Idempotency.NONE and "idempotencyKey" not in params.model_fields:
            raise TypeError(f"{name}: idempotent methods need an idempotencyKey param")
        handler.__gateway_method__ = MethodSpec(  # type: ignore[attr-defined]
            name, handler, params, result, role, scope, idempotency, handler_dedupes
        )
        return handler

    return decorate


@dataclass(frozen=True, slots=True)
class Deferred:
    """A module attribute named but not imported yet: `module.attr`, loaded on first use."""

    module: str
    attr: str

    def load(self) -> Any:
        """Import the module and return the attribute."""
        return getattr(importlib.import_module(self.module), self.attr)


class MethodRegistry:
    """Methods and events in the order they were registered."""

    def __init__(self) -> None:
        # A `Deferred` until the method's first call replaces it with its spec in place.
        self._methods: dict[str, MethodSpec | Deferred] = {}
        self._events: dict[str, EventSpec] = {}

    def register(self, handler: Handler) -> None:
        """Add a handler declared with `@method`."""
        spec: MethodSpec = handler.__gateway_method__  # type: ignore[attr-defined]
        self._add(spec.name, spec)

    def declare(self, name: str, handler: Deferred) -> None:
        """Add the method `name` served by `handler`, imported on the method's first call."""
        self._add(name, handler)

    def _add(self, name: str, entry: MethodSpec | Deferred) -> None:
        if name in self._methods:
            raise ValueError(f"method {name} registered twice")
        self._methods[name] = entry

    def _load(self, name: str, place: Deferred) -> MethodSpec:
        """Import a declared method's handler; its `@method` name must be `name`."""
        spec = getattr(place.load(), "__gateway_method__", None)
        if not isinstance(spec, MethodSpec) or spec.name != name:
            found = spec.name if isinstance(spec, MethodSpec) else "no @method"
            raise TypeError(f"{place.module}.{place.attr} declares {found}, listed as {name}")
        self._methods[name] = spec
        return spec

    def register_event(self, spec: EventSpec) -> None:
        """Declare an event the server emits."""
        self._events[spec.name] = spec

    def get(self, name: str) -> MethodSpec | None:
        """Return the method called `name`, importing its module on first use, or None."""
        entry = self._methods.get(name)
        if isinstance(entry, Deferred):
            return self._load(name, entry)
        return entry

    def event(self, name: str) -> EventSpec:
        """Return the declared event `name`."""
        return self._events[name]

    def events(self) -> Mapping[str, EventSpec]:
        """Return every declared event by name (read-only)."""
        return MappingProxyType(self._events)

    def __iter__(self) -> Iterator[MethodSpec]:
        """Iterate over every method's spec, importing the modules not loaded yet."""
        for name in list(self._methods):
            spec = self.get(name)
            assert spec is not None
            yield spec

    def method_names(self) -> list[str]:
        """Return `features.methods`."""
        return list(self._methods)

    def event_names(self) -> list[str]:
        """Return `features.events`."""
        return list(self._events)

    def method_declarations(self) -> list[MethodDeclaration]:
        """Return every method's schema declaration."""
        return [spec.declaration() for spec in self]

    def event_declarations(self) -> list[EventDeclaration]:
        """Return every event's schema declaration."""
        from ..protocol.schema import EventDeclaration  # the schema's models load when asked

        return [
            EventDeclaration(
                spec.name,
                spec.payload.load() if isinstance(spec.payload, Deferred) else spec.payload,
            )
            for spec in self._events.values()
        ]
