"""Regenerate the generated blocks of README.md and docs/*.md (`make docs`).

A generated block sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; the
prose around it is written by hand. The blocks come from the declarations the code runs on:
the method registry and its JSON Schema, `protocol/errors.py`, `protocol/detail_codes.py`,
`protocol/limits.py`, `protocol/control_link.py`, the hub's route table and the config model.
`python -m tests.tools.docs_gen --check` exits 1 and names the stale files instead of writing.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from clawgate import config as config_module
from clawgate.gateway.methods import build_registry
from clawgate.gateway.registry import MethodSpec
from clawgate.hub import api as hub_api
from clawgate.protocol import control_link, detail_codes, device_auth, errors, handshake, limits
from clawgate.protocol.ipc import frames as ipc_frames
from clawgate.protocol.ipc import framing as ipc_framing
from clawgate.protocol.ipc import registration as ipc_registration
from clawgate.protocol.ipc import timeouts as ipc_timeouts
from clawgate.protocol.schema import build_schema

__all__ = ["BLOCKS", "DOCUMENTS", "ROOT", "main", "render"]

ROOT = Path(__file__).resolve().parents[2]
#: The files whose generated blocks this script owns.
DOCUMENTS = ("README.md", "docs/protocol.md", "docs/control-plane.md")

_BLOCK = re.compile(
    r"(<!-- generated:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)",
    re.DOTALL,
)
# Section references to documents outside this repository are dropped from extracted comments.
_SPEC_REF = re.compile(
    r"\s*\((?:[a-z-]+ )?spec[^)]*\)|\s*\(§[^)]*\)|\s+of spec §[0-9]+(?:\.[0-9]+)*"
)

# What each top-level error code means; a new code in protocol/errors.py fails until it is here.
ERROR_MEANINGS: dict[str, str] = {
    errors.INVALID_REQUEST: "the frame, method, params or role is not acceptable as sent",
    errors.NOT_PAIRED: "the device must be paired first; `details` carries the request id",
    errors.NOT_LINKED: "the operation needs the control link to a hub, which is not up",
    errors.UNAVAILABLE: "the gateway cannot serve this now (starting, rate limited, internal)",
    errors.AGENT_TIMEOUT: "the agent run did not finish within its timeout",
    errors.APPROVAL_NOT_FOUND: "no pending approval has that id (expired or already resolved)",
    errors.FORBIDDEN: "the caller lacks a scope (protocol 4; `INVALID_REQUEST` on protocol 3)",
    errors.AGENT_RESULT_NOT_FOUND: "no outcome is kept for that run id (protocol 4)",
}


# -- JSON Schema to short type names ---------------------------------------------------------


def _type(schema: dict[str, Any]) -> str:
    """Return a short, readable type for a JSON Schema fragment."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " \\| ".join(json.dumps(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " \\| ".join(dict.fromkeys(_type(part) for part in schema[key]))
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"{_type(items)}[]" if isinstance(items, dict) else "array"
    if isinstance(kind, list):
        return " \\| ".join(str(k) for k in kind)
    if kind == "object" and schema.get("title") and "properties" in schema:
        return str(schema["title"])
    return str(kind or "any")


def _fields(schema: dict[str, Any]) -> str:
    """Return `name` (type), … for an object schema's properties, optional ones marked `?`."""
    props: dict[str, Any] = schema.get("properties") or {}
    if not props:
        return "none"
    required = set(schema.get("required") or ())
    return ", ".join(
        f"`{name}{'' if name in required else '?'}` ({_type(prop)})" for name, prop in props.items()
    )


def _anchor(name: str) -> str:
    """Return the GitHub anchor of a `### \\`name\\`` heading."""
    return re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-")


# -- protocol.md -----------------------------------------------------------------------------


def _group(spec: MethodSpec) -> str:
    return spec.handler.__module__.rsplit(".", 1)[-1]


def _summary(obj: Any) -> str:
    doc = (obj.__doc__ or "").strip().splitlines()
    return _SPEC_REF.sub("", doc[0]) if doc else ""


def _schema() -> dict[str, Any]:
    registry = build_registry()
    return build_schema("docs", registry.method_declarations(), registry.event_declarations())[
        "definitions"
    ]


def methods_table() -> str:
    """Return one row per method: name, role, scope, idempotency, what it does."""
    rows = ["| method | role | scope | idempotencyKey | what it does |", "|---|---|---|---|---|"]
    for spec in build_registry():
        rows.append(
            f"| [`{spec.name}`](#{_anchor(spec.name)}) | {spec.role.value} | "
            f"{spec.scope or '—'} | {spec.idempotency.value} | {_summary(spec.handler)} |"
        )
    return "\n".join(rows)


def methods_reference() -> str:
    """Return a section per method: summary, params and result from the schema."""
    defs = _schema()
    out: list[str] = []
    group = ""
    for spec in build_registry():
        if _group(spec) != group:
            group = _group(spec)
            out += [f"### {group} methods", ""]
        params = defs[f"{spec.name}.params"]
        result = defs[f"{spec.name}.result"]
        result_text = _fields(result) if "properties" in result else f"({_type(result)})"
        out += [
            f"#### `{spec.name}`",
            "",
            _summary(spec.handler),
            "",
            f"- role `{spec.role.value}`, scope `{spec.scope or '—'}`, "
            f"idempotencyKey {spec.idempotency.value}",
            f"- params: {_fields(params)}",
            f"- result: {result_text}",
            "",
        ]
    return "\n".join(out).rstrip("\n")


def events_table() -> str:
    """Return one row per event: name, who receives it, payload fields."""
    defs = _schema()
    rows = ["| event | sent to | payload |", "|---|---|---|"]
    for name, spec in build_registry().events().items():
        gate = spec.gate.value if spec.gate is not None else "one connection (no seq)"
        payload = defs[f"{name}.payload"]
        shown = _fields(payload) if "properties" in payload else f"({_type(payload)})"
        rows.append(f"| `{name}` | {gate} | {shown} |")
    return "\n".join(rows)


def frames_reference() -> str:
    """Return the fields of the frames and handshake shapes."""
    defs = _schema()
    names = ("RequestFrame", "ResponseFrame", "EventFrame", "ErrorShape", "ConnectParams")
    names += ("HelloOk4", "Policy", "Snapshot")
    return "\n".join(f"- `{name}`: {_fields(defs[name])}" for name in names)


def error_codes() -> str:
    """Return the top-level error codes with their meaning."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| `{code}` | {ERROR_MEANINGS[code]} |" for code in errors.ERROR_CODES]
    return "\n".join(rows)


def _commented_constants(module: ModuleType) -> Iterator[tuple[str, str]]:
    """Yield each module-level constant with the comment block above its group."""
    comment: list[str] = []
    in_comment = False
    for line in Path(str(module.__file__)).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if not in_comment:
                comment = []
            in_comment = True
            comment.append(stripped.lstrip("#:").strip())
            continue
        in_comment = False
        match = re.match(r"^([A-Z][A-Z0-9_]*)(?::\s*Final)?\s*=", line)
        if match:
            yield match.group(1), _SPEC_REF.sub("", " ".join(comment))
        elif not stripped:
            comment = []


# What each WebSocket close code of the gateway means; a new CLOSE_* constant fails until here.
CLOSE_MEANINGS: dict[str, str] = {
    "CLOSE_HANDSHAKE_TIMEOUT": "no valid `connect` before the handshake deadline",
    "CLOSE_PROTOCOL": "a frame broke the protocol (or too many invalid frames or refusals)",
    "CLOSE_BINARY": "a binary frame: the protocol is JSON text only",
    "CLOSE_POLICY": "refused by policy: failed auth, origin, slow consumer",
    "CLOSE_TOO_LARGE": "a frame over `maxPayload` (64 KiB before `hello-ok`)",
    "CLOSE_RESTART": "the gateway is restarting; reconnect",
    "CLOSE_STARTING": "the gateway is not ready yet; reconnect",
    "CLOSE_AUTH_CHANGED": "the credential this socket used was changed, rotated or revoked",
}


def close_codes() -> str:
    """Return the gateway's WebSocket close codes."""
    rows = ["| close code | name | meaning |", "|---|---|---|"]
    for name, _ in _commented_constants(handshake):
        if name.startswith("CLOSE_"):
            value = getattr(handshake, name)
            rows.append(f"| {value} | `{name}` | {CLOSE_MEANINGS[name]} |")
    return "\n".join(rows)


def detail_codes_table() -> str:
    """Return every `details.code`, grouped as `protocol/detail_codes.py` groups them."""
    where = dict(_commented_constants(detail_codes))
    where.update(
        (name, "Device identity in `connect` (the signed challenge).")
        for name, _ in _commented_constants(device_auth)
        if name.startswith("DEVICE_AUTH_")
    )
    rows = ["| details.code | where |", "|---|---|"]
    previous = None
    for code in detail_codes.DETAIL_CODES:
        name = next(n for n in where if getattr(detail_codes, n, None) == code)
        text = where[name] if where[name] != previous else "″"
        previous = where[name]
        rows.append(f"| `{code}` | {text} |")
    return "\n".join(rows)


def _value(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:_}"
    return repr(value)


def _constants_table(module: ModuleType, keep: Callable[[str, Any], bool]) -> str:
    """Return name, value and comment of a module's kept constants; a repeated comment is ″."""
    rows = ["| name | value | meaning |", "|---|---|---|"]
    previous = None
    for name, comment in _commented_constants(module):
        value = getattr(module, name, None)
        if not keep(name, value):
            continue
        text = comment if comment != previous else "″"
        previous = comment
        rows.append(f"| `{name}` | {_value(value)} | {text} |")
    return "\n".join(rows)


def limits_table() -> str:
    """Return every named limit of `protocol/limits.py` with its value and comment."""
    return _constants_table(limits, lambda name, _: name not in ("KIB", "MIB"))


def configurable_limits() -> str:
    """Return the `Limits` defaults (per gateway; the first three are in `hello-ok.policy`)."""
    rows = ["| Limits field | default |", "|---|---|"]
    defaults = limits.Limits()
    rows += [f"| `{f.name}` | {_value(getattr(defaults, f.name))} |" for f in fields(defaults)]
    return "\n".join(rows)


# -- control-plane.md ------------------------------------------------------------------------


def _payload_fields(model: type[BaseModel]) -> str:
    """Return a wire model's field names, optional ones marked `?`."""
    return ", ".join(
        f"`{info.alias or name}`" + ("" if info.is_required() else "?")
        for name, info in model.model_fields.items()
    )


def link_message_types() -> str:
    """Return each control-link message type with its payload fields."""
    payloads: dict[Any, type[BaseModel]] = dict(control_link._PAYLOADS)
    rows = ["| type | payload |", "|---|---|"]
    for kind in control_link.MessageType:
        rows.append(f"| `{kind.value}` | {_payload_fields(payloads[kind]) or 'none'} |")
    return "\n".join(rows)


def link_envelope() -> str:
    """Return the envelope's fields."""
    return _payload_fields(control_link.Envelope)


def link_constants() -> str:
    """Return the control link's close codes, versions and timings."""
    return _constants_table(
        control_link,
        lambda name, value: isinstance(value, int | float) and not name.startswith("_"),
    )


def ipc_error_codes() -> str:
    """Return the plugin IPC error codes and whether each is retryable by default."""
    rows = ["| code | retryable |", "|---|---|"]
    rows += [
        f"| `{code}` | {'yes' if retry else 'no'} |"
        for code, retry in ipc_frames.DEFAULT_RETRYABLE.items()
    ]
    return "\n".join(rows)


def ipc_limits() -> str:
    """Return the plugin socket's frame limit, protocol versions and request timeouts."""
    rows = [
        f"- protocol versions {ipc_registration.PROTOCOL_MIN}..{ipc_registration.PROTOCOL_MAX}; "
        f"a frame is at most {ipc_framing.MAX_FRAME_BYTES:_} bytes before its LF; "
        f"at most {ipc_registration.MAX_CAPABILITIES} capabilities per plugin",
        f"- request timeouts (seconds; {ipc_timeouts.DEFAULT_REQUEST_TIMEOUT_S:g} for any other "
        "method, `command.execute` carries its own `timeoutMs`): "
        + ", ".join(f"`{m}` {t:g}" for m, t in ipc_timeouts.DEFAULT_TIMEOUTS_S.items()),
    ]
    return "\n".join(rows)


def hub_routes() -> str:
    """Return the hub's HTTP routes from its route table (docs/hub-api.md has each in full)."""
    rows = ["| route | auth | what it does |", "|---|---|---|"]
    for route in hub_api.ROUTES:
        rows.append(f"| `{route.method} {route.path}` | {route.auth} | {_summary(route.handler)} |")
    return "\n".join(rows)


# -- README.md -------------------------------------------------------------------------------


def readme_methods() -> str:
    """Return the implemented methods grouped by their module, linked to the reference."""
    groups: dict[str, list[str]] = {}
    for spec in build_registry():
        link = f"[`{spec.name}`](docs/protocol.md#{_anchor(spec.name)})"
        groups.setdefault(_group(spec), []).append(link)
    lines = [f"- {group}: {', '.join(names)}" for group, names in groups.items()]
    events = ", ".join(f"`{name}`" for name in build_registry().event_names())
    return "\n".join([*lines, "", f"Events: {events}."])


def _toml(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int | float | str | list):
        return json.dumps(value)
    raise TypeError(f"no TOML spelling for {value!r}")


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """Return the section model an annotation holds, and whether it is a named table."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and args:
        model, _ = _model_of(args[-1])
        return model, model is not None
    for arg in args:
        model, named = _model_of(arg)
        if model is not None:
            return model, named
    return None, False


def _line(key: str, value: str, comment: str | None, *, commented: bool) -> str:
    text = f"{'# ' if commented else ''}{key} = {value}"
    if comment:
        text = f"{text.ljust(36)} # {comment}"
    return text


def _section(
    model: type[BaseModel], path: str, *, example: bool, parent: type[BaseModel] | None = None
) -> list[str]:
    """Return the TOML lines of one section and the sections under it (commented: examples)."""
    title = _summary(model).split(": ", 1)[-1].rstrip(".")
    header = f"{'# ' if example else ''}[{path}]"
    lines = [f"{header.ljust(36)} # {title}" if title else header]
    if parent is not None and set(model.model_fields) <= set(parent.model_fields):
        # A named account: every key is one of its channel's, repeated to override it.
        keys = textwrap.wrap(
            "any of the keys above, to override them for this account: "
            + ", ".join(model.model_fields),
            94,
        )
        return [*lines, *(f"# {line}" for line in keys)]
    nested: list[str] = []
    for name, info in model.model_fields.items():
        sub, named = _model_of(info.annotation)
        if sub is not None:
            sub_path = f"{path}.{name}.NAME" if named else f"{path}.{name}"
            absent = info.default is None
            nested += [
                "",
                *_section(
                    sub,
                    sub_path,
                    example=example or named or absent,
                    parent=model if named else None,
                ),
            ]
            continue
        lines.append(_field_line(name, info, example=example))
    return lines + nested


def _field_line(name: str, info: FieldInfo, *, example: bool) -> str:
    description = info.description
    if info.default is PydanticUndefined and info.default_factory is None:
        sample = info.examples[0] if info.examples else "…"
        value = sample if isinstance(sample, str) and sample == "…" else _toml(sample)
        return _line(
            name, value, f"required; {description}" if description else "required", commented=True
        )
    default = info.get_default(call_default_factory=True)
    if default is None:
        value = _toml(info.examples[0]) if info.examples else "…"
        return _line(name, value, description, commented=True)
    return _line(name, _toml(default), description, commented=example)


def readme_config() -> str:
    """Return every config key with its default and description, as config.toml."""
    lines: list[str] = ["```toml"]
    for name, info in config_module.ClawgateConfig.model_fields.items():
        model, named = _model_of(info.annotation)
        assert model is not None, name
        lines += [*_section(model, name + (".NAME" if named else ""), example=named), ""]
    return "\n".join([*lines[:-1], "```"])


# -- the blocks and the files ----------------------------------------------------------------

BLOCKS: dict[str, Callable[[], str]] = {
    "methods-table": methods_table,
    "methods": methods_reference,
    "events": events_table,
    "frames": frames_reference,
    "error-codes": error_codes,
    "close-codes": close_codes,
    "detail-codes": detail_codes_table,
    "limits": limits_table,
    "configurable-limits": configurable_limits,
    "link-envelope": link_envelope,
    "link-messages": link_message_types,
    "link-constants": link_constants,
    "hub-routes": hub_routes,
    "ipc-error-codes": ipc_error_codes,
    "ipc-limits": ipc_limits,
    "readme-methods": readme_methods,
    "readme-config": readme_config,
}


def render(text: str) -> str:
    """Return `text` with every generated block replaced by its current content."""
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in cache:
            cache[name] = BLOCKS[name]()
        return f"{match.group(1)}{cache[name]}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def main(argv: list[str]) -> int:
    """Write the generated blocks, or with `--check` report the files that are stale."""
    check = "--check" in argv
    stale = []
    for name in DOCUMENTS:
        path = ROOT / name
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(name)
            if not check:
                path.write_text(new)
    if check and stale:
        print(f"stale generated blocks in {', '.join(stale)}: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
