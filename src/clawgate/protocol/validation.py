"""Turn pydantic validation errors into the spec's one-line wording (spec §2.1)."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = ["describe_validation_error"]


def _pointer(location: tuple[int | str, ...]) -> str:
    """Render a location as a JSON pointer, or `root` for the top level."""
    if not location:
        return "root"
    return "/" + "/".join(str(part) for part in location)


def _describe(error: ErrorDetails) -> str:
    """Describe one pydantic error as `at <path>: <problem>`."""
    location = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"at {_pointer(location[:-1])}: unexpected property '{location[-1]}'"
    if kind == "missing":
        return f"at {_pointer(location[:-1])}: must have required property '{location[-1]}'"
    message = error["msg"][0].lower() + error["msg"][1:] if error["msg"] else "invalid value"
    return f"at {_pointer(location)}: {message}"


def describe_validation_error(exc: ValidationError) -> str:
    """Return the first problem of `exc` in the form `at <path>: <problem>`."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if not errors:
        return "at root: invalid value"
    return _describe(errors[0])
