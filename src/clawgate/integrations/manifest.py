"""Integration manifest version 1: validation and loading (spec §6).

Validation is pure and reports every broken rule at once, each as ``{path, message}`` with a
dotted path (``commands[1].timeout_ms``; the empty path is the manifest itself). Messages state
the rule and the value found, except where the value may be a secret (anything a secret
property carries), which is never echoed. The ``config_schema`` is checked against the
manifest's own rules only; it is not validated as a full JSON Schema.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypedDict

__all__ = [
    "COMMAND_NAME_RE",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_COMMAND_TIMEOUT_MS",
    "ID_RE",
    "MANIFEST_FILENAMES",
    "SEMVER_RE",
    "CommandSpec",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "load_manifest_file",
    "validate_manifest",
]

MANIFEST_VERSION: Final = 1
MANIFEST_FILENAMES: Final = ("clawgate-integration.yaml", "clawgate-integration.toml")
ID_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
CAPABILITY_RE: Final = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
COMMAND_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# The regex recommended by semver.org for SemVer 2.0.0.
SEMVER_RE: Final = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
DEFAULT_CAPABILITIES: Final = ("integrations",)
DEFAULT_COMMAND_TIMEOUT_MS: Final = 30_000
MIN_COMMAND_TIMEOUT_MS: Final = 1_000
MAX_COMMAND_TIMEOUT_MS: Final = 600_000
MAX_NAME_LEN: Final = 80
MAX_DESCRIPTION_LEN: Final = 2000
MAX_CAPABILITIES: Final = 16

_KNOWN_KEYS: Final = frozenset(
    {
        "manifest_version",
        "id",
        "version",
        "name",
        "description",
        "capabilities",
        "config_schema",
        "depends_on",
        "commands",
    }
)
_SECRET_MARK: Final = "x-secret"
_SECRET_FORBIDDEN: Final = ("default", "const", "enum", "examples")
_SHOW_MAX: Final = 40


class ManifestIssue(TypedDict):
    """One broken rule: where and what."""

    path: str
    message: str


class ManifestError(ValueError):
    """A manifest broke one or more rules; ``errors`` lists all of them."""

    def __init__(self, errors: list[ManifestIssue]) -> None:
        self.errors = errors
        first = errors[0] if errors else {"path": "", "message": "invalid manifest"}
        where = first["path"] or "manifest"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}: {first['message']}{more}")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command an integration declares."""

    name: str
    timeout_ms: int = DEFAULT_COMMAND_TIMEOUT_MS
    description: str | None = None
    params_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated integration manifest (version 1)."""

    id: str
    version: str
    name: str
    manifest_version: int = MANIFEST_VERSION
    description: str | None = None
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    config_schema: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({"type": "object"})
    )
    depends_on: tuple[str, ...] = ()
    commands: tuple[CommandSpec, ...] = ()

    def secret_fields(self) -> tuple[str, ...]:
        """Return the names of the top-level config properties marked ``x-secret``."""
        props = self.config_schema.get("properties")
        if not isinstance(props, Mapping):
            return ()
        return tuple(
            name
            for name, spec in props.items()
            if isinstance(spec, Mapping) and spec.get(_SECRET_MARK) is True
        )

    def command(self, name: str) -> CommandSpec | None:
        """Return the declared command called ``name``, if any."""
        return next((c for c in self.commands if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest in its JSON form (defaults filled in)."""
        out: dict[str, Any] = {
            "manifest_version": self.manifest_version,
            "id": self.id,
            "version": self.version,
            "name": self.name,
            "capabilities": list(self.capabilities),
            "config_schema": _thaw(self.config_schema),
            "depends_on": list(self.depends_on),
            "commands": [],
        }
        if self.description is not None:
            out["description"] = self.description
        for cmd in self.commands:
            c: dict[str, Any] = {"name": cmd.name, "timeout_ms": cmd.timeout_ms}
            if cmd.description is not None:
                c["description"] = cmd.description
            if cmd.params_schema is not None:
                c["params_schema"] = _thaw(cmd.params_schema)
            out["commands"].append(c)
        return out


def _schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Return why ``schema`` is not a usable JSON Schema 2020-12, or None."""
    from jsonschema import Draft202012Validator  # heavy; only when a manifest is checked
    from jsonschema.exceptions import SchemaError

    plain = _thaw(schema)
    try:
        Draft202012Validator.check_schema(plain)
        for pattern in _patterns(plain):
            re.compile(pattern)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        return (
            f"is not a valid JSON Schema 2020-12 ({exc.message}{' at ' + where if where else ''})"
        )
    except re.error as exc:
        return f"has a pattern that is not a valid regular expression ({exc})"
    return None


def _patterns(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "pattern" and isinstance(item, str):
                yield item
            else:
                yield from _patterns(item)
    elif isinstance(value, list):
        for item in value:
            yield from _patterns(item)


def validate_manifest(data: Mapping[str, Any]) -> Manifest:
    """Validate a manifest in its JSON/TOML/YAML object form.

    Args:
        data: The parsed manifest.

    Returns:
        The manifest with defaults applied.

    Raises:
        ManifestError: Listing every rule the manifest breaks.
    """
    v = _Validator()
    manifest = v.run(data)
    if manifest is not None and not v.errors:
        # The schemas are applied to config and command params later: they must compile.
        problem = _schema_problem(manifest.config_schema)
        if problem is not None:
            v.err("config_schema", problem)
        for index, command in enumerate(manifest.commands):
            if command.params_schema is not None:
                problem = _schema_problem(command.params_schema)
                if problem is not None:
                    v.err(f"commands[{index}].params_schema", problem)
    if v.errors or manifest is None:
        raise ManifestError(v.errors)
    return manifest


def load_manifest_file(path: str | Path) -> Manifest:
    """Read and validate a ``clawgate-integration.toml`` (or ``.yaml``, if PyYAML is installed).

    Args:
        path: The manifest file; the suffix picks the parser.

    Returns:
        The validated manifest.

    Raises:
        ManifestError: If the file cannot be parsed or breaks a rule.
        OSError: If the file cannot be read.
    """
    p = Path(path)
    raw = p.read_bytes()
    suffix = p.suffix.lower()
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ManifestError([{"path": "", "message": f"invalid TOML: {exc}"}]) from exc
    elif suffix in (".yaml", ".yml"):
        data = _load_yaml(raw)
    else:
        raise ManifestError(
            [{"path": "", "message": f"unsupported manifest file type {suffix or '(none)'!r}"}]
        )
    return validate_manifest(data)


def _load_yaml(raw: bytes) -> Any:
    """Parse YAML with a safe loader that rejects duplicate keys."""
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ManifestError(
            [{"path": "", "message": "YAML manifests need PyYAML, which is not installed"}]
        ) from exc

    class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc,name-defined,unused-ignore]
        """Safe loader that fails on duplicate mapping keys."""

    def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    _StrictLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
    )
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError([{"path": "", "message": f"invalid YAML: {exc}"}]) from exc


def _show(value: Any) -> str:
    """Describe a found value briefly for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if len(value) > _SHOW_MAX:
            return f"a string of {len(value)} characters"
        return repr(value)
    return _type_name(value)


def _type_name(value: Any) -> str:
    """Name a value's JSON type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _freeze(value: Any) -> Any:
    """Return a read-only deep copy of JSON-like data."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if _is_list(value):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Return plain dicts and lists for frozen JSON-like data."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


class _Validator:
    """Collect every rule violation of one manifest."""

    def __init__(self) -> None:
        self.errors: list[ManifestIssue] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append({"path": path, "message": message})

    def run(self, data: Any) -> Manifest | None:
        if not isinstance(data, Mapping):
            self.err("", f"manifest must be an object, found {_type_name(data)}")
            return None
        for key in data:
            if not isinstance(key, str):
                self.err("", f"keys must be strings, found {_show(key)}")
            elif key not in _KNOWN_KEYS and not key.startswith("x-"):
                self.err(key, f"unknown key {key!r} (only known keys and 'x-' keys are allowed)")

        mv = data.get("manifest_version", MANIFEST_VERSION)
        if not _is_int(mv) or mv != MANIFEST_VERSION:
            self.err("manifest_version", f"must be the integer 1, found {_show(mv)}")

        ident = self.required_str(data, "id")
        if ident is not None and not ID_RE.match(ident):
            self.err("id", f"must match {ID_RE.pattern}, found {_show(ident)}")
        version = self.required_str(data, "version")
        if version is not None and not SEMVER_RE.match(version):
            self.err("version", f"must be a SemVer 2.0.0 version, found {_show(version)}")
        name = self.required_str(data, "name")
        if name is not None and not 1 <= len(name) <= MAX_NAME_LEN:
            self.err("name", f"must have 1 to {MAX_NAME_LEN} characters, found {len(name)}")

        description = data.get("description")
        if description is not None:
            if not isinstance(description, str):
                self.err("description", f"must be a string, found {_type_name(description)}")
                description = None
            elif len(description) > MAX_DESCRIPTION_LEN:
                self.err(
                    "description",
                    f"must have at most {MAX_DESCRIPTION_LEN} characters, found {len(description)}",
                )

        capabilities = self.capabilities(data.get("capabilities", list(DEFAULT_CAPABILITIES)))
        schema = self.config_schema(data.get("config_schema", {"type": "object"}))
        depends_on = self.depends_on(data.get("depends_on", []), ident)
        commands = self.commands(data.get("commands", []))

        if self.errors:
            return None
        assert ident is not None and version is not None and name is not None
        return Manifest(
            id=ident,
            version=version,
            name=name,
            description=description,
            capabilities=capabilities,
            config_schema=_freeze(schema),
            depends_on=depends_on,
            commands=commands,
        )

    def required_str(self, data: Mapping[str, Any], key: str) -> str | None:
        if key not in data:
            self.err(key, "is required")
            return None
        value = data[key]
        if not isinstance(value, str):
            self.err(key, f"must be a string, found {_type_name(value)}")
            return None
        return value

    def unique_strings(
        self, path: str, value: Any, pattern: re.Pattern[str], what: str
    ) -> list[str]:
        """Check a list of unique strings matching ``pattern``; return the good ones."""
        if not _is_list(value):
            self.err(path, f"must be a list of strings, found {_type_name(value)}")
            return []
        good: list[str] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            p = f"{path}[{i}]"
            if not isinstance(item, str):
                self.err(p, f"must be a string, found {_type_name(item)}")
            elif not pattern.match(item):
                self.err(p, f"must be {what} matching {pattern.pattern}, found {_show(item)}")
            elif item in seen:
                self.err(p, f"must be unique, found {_show(item)} again")
            else:
                seen.add(item)
                good.append(item)
        return good

    def capabilities(self, value: Any) -> tuple[str, ...]:
        good = self.unique_strings("capabilities", value, CAPABILITY_RE, "a capability")
        if _is_list(value) and not 1 <= len(value) <= MAX_CAPABILITIES:
            self.err(
                "capabilities",
                f"must hold 1 to {MAX_CAPABILITIES} capabilities, found {len(value)}",
            )
        return tuple(good)

    def depends_on(self, value: Any, own_id: str | None) -> tuple[str, ...]:
        good = self.unique_strings("depends_on", value, ID_RE, "an integration id")
        if own_id is not None and _is_list(value):
            for i, item in enumerate(value):
                if item == own_id:
                    self.err(f"depends_on[{i}]", f"must not be the manifest's own id {own_id!r}")
        return tuple(d for d in good if d != own_id)

    def config_schema(self, value: Any) -> Mapping[str, Any]:
        path = "config_schema"
        if not isinstance(value, Mapping):
            self.err(path, f"must be an object (a JSON Schema), found {_type_name(value)}")
            return {}
        root_type = value.get("type")
        if root_type != "object":
            self.err(f"{path}.type", f"the root must have type 'object', found {_show(root_type)}")
        props = value.get("properties")
        if props is not None and not isinstance(props, Mapping):
            self.err(f"{path}.properties", f"must be an object, found {_type_name(props)}")
            props = None
        # Top-level properties are the only place x-secret is allowed; check them, then look
        # everywhere else (excluding exactly those marks) for stray ones.
        allowed: set[int] = set()
        if props is not None:
            for pname, spec in props.items():
                if isinstance(spec, Mapping) and _SECRET_MARK in spec:
                    allowed.add(id(spec))
                    self.secret_property(f"{path}.properties.{pname}", spec)
        for stray in _find_secret_marks(value, path, allowed):
            self.err(
                stray,
                "x-secret is only allowed on a top-level property of config_schema",
            )
        return value

    def secret_property(self, path: str, spec: Mapping[str, Any]) -> None:
        mark = spec[_SECRET_MARK]
        if not isinstance(mark, bool):
            self.err(f"{path}.{_SECRET_MARK}", f"must be a boolean, found {_type_name(mark)}")
            return
        if not mark:
            return
        if spec.get("type") != "string":
            self.err(
                f"{path}.type",
                f"a secret property must have type 'string', found {_show(spec.get('type'))}",
            )
        for key in _SECRET_FORBIDDEN:
            if key in spec:
                # The value might be a real secret someone pasted in: never echo it.
                self.err(f"{path}.{key}", f"a secret property must not carry {key!r}")

    def commands(self, value: Any) -> tuple[CommandSpec, ...]:
        if not _is_list(value):
            self.err("commands", f"must be a list of objects, found {_type_name(value)}")
            return ()
        out: list[CommandSpec] = []
        seen: set[str] = set()
        for i, cmd in enumerate(value):
            p = f"commands[{i}]"
            if not isinstance(cmd, Mapping):
                self.err(p, f"must be an object, found {_type_name(cmd)}")
                continue
            ok = True
            name = cmd.get("name")
            if name is None:
                self.err(f"{p}.name", "is required")
                ok = False
            elif not isinstance(name, str):
                self.err(f"{p}.name", f"must be a string, found {_type_name(name)}")
                ok = False
            elif not COMMAND_NAME_RE.match(name):
                self.err(f"{p}.name", f"must match {COMMAND_NAME_RE.pattern}, found {_show(name)}")
                ok = False
            elif name in seen:
                self.err(f"{p}.name", f"must be unique, found {_show(name)} again")
                ok = False
            else:
                seen.add(name)
            timeout = cmd.get("timeout_ms", DEFAULT_COMMAND_TIMEOUT_MS)
            if not _is_int(timeout) or not (
                MIN_COMMAND_TIMEOUT_MS <= timeout <= MAX_COMMAND_TIMEOUT_MS
            ):
                self.err(
                    f"{p}.timeout_ms",
                    f"must be an integer from {MIN_COMMAND_TIMEOUT_MS} to "
                    f"{MAX_COMMAND_TIMEOUT_MS}, found {_show(timeout)}",
                )
                ok = False
            desc = cmd.get("description")
            if desc is not None and not isinstance(desc, str):
                self.err(f"{p}.description", f"must be a string, found {_type_name(desc)}")
                ok = False
            params_schema = cmd.get("params_schema")
            if params_schema is not None and not isinstance(params_schema, Mapping):
                self.err(
                    f"{p}.params_schema",
                    f"must be an object (a JSON Schema), found {_type_name(params_schema)}",
                )
                ok = False
            if ok and isinstance(name, str):
                out.append(
                    CommandSpec(
                        name=name,
                        timeout_ms=timeout,
                        description=desc,
                        params_schema=None if params_schema is None else _freeze(params_schema),
                    )
                )
        return tuple(out)


def _find_secret_marks(value: Any, path: str, allowed: set[int]) -> Iterator[str]:
    """Yield the paths of ``x-secret`` keys not in an ``allowed`` (by identity) object."""
    if isinstance(value, Mapping):
        if _SECRET_MARK in value and id(value) not in allowed:
            yield f"{path}.{_SECRET_MARK}"
        for k, v in value.items():
            yield from _find_secret_marks(v, f"{path}.{k}", allowed)
    elif _is_list(value):
        seq: Sequence[Any] = value
        for i, v in enumerate(seq):
            yield from _find_secret_marks(v, f"{path}[{i}]", allowed)
