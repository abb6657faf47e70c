"""Reading, redacting, hashing, patching and writing `config.toml` (gateway spec §10.9).

Everything that edits the file goes through here, so secrets are handled in one place:
shown values are redacted to the sentinel, and a sentinel written back keeps the
current secret instead of replacing it.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

if TYPE_CHECKING:
    from tomlkit.items import Table
    from tomlkit.toml_document import TOMLDocument

from .config import SECRET_KEYS, ClawgateConfig
from .files import write_atomic

__all__ = [
    "REDACTED",
    "ConfigSnapshot",
    "apply_merge_patch",
    "config_hash",
    "dumps",
    "read_snapshot",
    "redact_data",
    "redact_raw",
    "restart_keys",
    "restart_required",
    "restore_secrets",
    "validate_raw",
    "write_config",
]

# OpenClaw's sentinel for a redacted secret (observed on the wire).
REDACTED: Final = "__OPENCLAW_REDACTED__"

# Settings applied without a restart; every other change sets `restartRequired`.
_HOT_KEYS: Final = frozenset(
    {
        ("gateway", "auth", "token"),
        ("gateway", "auth", "password"),
        ("gateway", "allowed_origins"),
        ("gateway", "heartbeat_every_s"),
        ("heartbeat", "every"),
        ("heartbeat", "active_hours"),
        ("heartbeat", "prompt"),
        ("heartbeat", "target"),
        ("heartbeat", "channel"),
        ("heartbeat", "to"),
        ("heartbeat", "ack_token"),
        ("log", "level"),
        ("auth", "api_key"),
    }
)


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """The file as it is now: text, parsed data, and whether it validates."""

    exists: bool
    raw: str
    data: dict[str, Any]
    config: ClawgateConfig | None
    issues: list[dict[str, str]] = field(default_factory=list)


def validate_raw(raw: str) -> tuple[dict[str, Any], ClawgateConfig | None, list[dict[str, str]]]:
    """Parse and validate TOML text; return data, the model (or None) and the issues."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        return {}, None, [{"path": "", "message": f"not valid TOML: {exc}"}]
    try:
        return data, ClawgateConfig.model_validate(data), []
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False, include_input=False):
            path = ".".join(str(part) for part in error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            issues.append({"path": path, "message": message})
        return data, None, issues


def read_snapshot(path: Path) -> ConfigSnapshot:
    """Read the config file; a missing file is an empty, valid config."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigSnapshot(False, "", {}, ClawgateConfig())
    data, config, issues = validate_raw(raw)
    return ConfigSnapshot(True, raw, data, config, issues)


def config_hash(raw: str, key: bytes) -> str:
    """Return an opaque, keyed hash of the file content (it cannot help guess secrets)."""
    return hmac.new(key, raw.encode("utf-8"), hashlib.sha256).hexdigest()


def _secret_paths(data: Any) -> list[tuple[str, ...]]:
    """Return the secret key paths present in `data`, with each `*` expanded to its keys."""
    found: list[tuple[str, ...]] = []
    for pattern in SECRET_KEYS:
        prefixes: list[tuple[str, ...]] = [()]
        for part in pattern[:-1]:
            expanded = []
            for prefix in prefixes:
                container = _lookup(data, prefix)
                if not isinstance(container, dict):
                    continue
                names = list(container) if part == "*" else [part] if part in container else []
                expanded += [(*prefix, name) for name in names]
            prefixes = expanded
        found += [(*prefix, pattern[-1]) for prefix in prefixes]
    return found


def _lookup(container: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(container, dict) or part not in container:
            return None
        container = container[part]
    return container


def redact_data(data: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of parsed config data with every secret replaced by the sentinel."""
    redacted = _deep_copy(data)
    for path in _secret_paths(redacted):
        parent = _lookup(redacted, path[:-1])
        if isinstance(parent, dict) and parent.get(path[-1]) is not None:
            parent[path[-1]] = REDACTED
    return redacted


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def redact_raw(raw: str) -> str:
    """Return the TOML text with every secret value replaced by the sentinel."""
    import tomlkit  # loaded on first use: most gateways never edit their config

    try:
        document = tomlkit.parse(raw)
    except Exception:
        # Unparseable text cannot be redacted key by key; show none of it.
        return ""
    for path in _secret_paths(document):
        parent = _lookup(document, path[:-1])
        if isinstance(parent, dict) and path[-1] in parent:
            parent[path[-1]] = REDACTED
    return tomlkit.dumps(document)


def restore_secrets(document: TOMLDocument, current: dict[str, Any]) -> None:
    """Where `document` holds the sentinel for a secret, put the current value back."""
    for path in _secret_paths(document):
        parent = _lookup(document, path[:-1])
        if not isinstance(parent, dict) or parent.get(path[-1]) != REDACTED:
            continue
        value = _lookup(current, path)
        if value is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch to a tomlkit container in place; return it."""
    import tomlkit  # loaded on first use: most gateways never edit their config

    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = tomlkit.table()
    for key, value in patch.items():
        if value is None:
            if key in target:
                del target[key]
        elif isinstance(value, dict):
            child = target.get(key)
            if not isinstance(child, dict):
                child = tomlkit.table()
            target[key] = apply_merge_patch(child, value)
        else:
            target[key] = value
    return target


def restart_required(old: ClawgateConfig, new: ClawgateConfig) -> bool:
    """Return whether a change touches settings that apply only at the next start."""
    return bool(restart_keys(old, new))


def restart_keys(old: ClawgateConfig, new: ClawgateConfig) -> list[str]:
    """Return the changed keys (dotted, sorted) that apply only at the next start."""
    old_data = old.model_dump(mode="json")
    new_data = new.model_dump(mode="json")
    changed = _changed_paths(old_data, new_data, ())
    return sorted(".".join(path) for path in changed if path not in _HOT_KEYS)


def _changed_paths(old: Any, new: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in old.keys() | new.keys():
            changed += _changed_paths(old.get(key), new.get(key), (*prefix, key))
        return changed
    return [] if old == new else [prefix]


def dumps(document: TOMLDocument | Table) -> str:
    """Render a tomlkit document as text."""
    import tomlkit

    return tomlkit.dumps(document)


def write_config(path: Path, document: TOMLDocument | Table | str) -> str:
    """Write the config atomically with mode 0600 and return the text written."""
    import tomlkit  # loaded on first use: most gateways never edit their config

    text = document if isinstance(document, str) else tomlkit.dumps(document)
    write_atomic(path, text)
    return text
