"""Desired state: parse a DESIRED_STATE payload into validated entries (spec §3.5, §5.1, §6).

Shape errors that make the whole snapshot unusable (not an object, no revision, duplicate
ids) raise ``DesiredStateError``. A broken entry does not: it is kept with ``invalid`` set to
an ``INVALID_MANIFEST`` or ``INVALID_CONFIG`` error so the report can say what is wrong with
it while the other entries converge. Secret values live only in ``DesiredState.secrets``;
``snapshot()`` is what may be written to state.db.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ..commands.queue import redact
from ..integrations import Manifest, ManifestError, validate_manifest
from ..integrations.manifest import ID_RE, SEMVER_RE
from .errors import (
    INVALID_CONFIG,
    INVALID_MANIFEST,
    DesiredStateError,
    ReconcileError,
)

__all__ = [
    "DesiredEntry",
    "DesiredState",
    "canonical_hash",
    "parse_desired_state",
    "schema_issues",
    "secrets_digest",
]

_ENTRY_KEYS: Final = frozenset(
    {"id", "version", "enabled", "manifest", "config", "secrets", "plugin"}
)
_PLUGIN_NAME_MAX: Final = 64
_KEY_NAMING_RULES: Final = frozenset({"required", "additionalProperties", "dependentRequired"})


def canonical_hash(value: Any) -> str:
    """Return ``sha256:<hex>`` of ``value`` as canonical (sorted-key) JSON."""
    digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest}"  # the spec's hash notation (§0)


def secrets_digest(key: bytes, secrets: Mapping[str, str]) -> str:
    """Return the HMAC-SHA256 of ``secrets`` under ``key`` (in memory only, spec §5.2)."""
    return hmac.new(
        key, orjson.dumps(dict(secrets), option=orjson.OPT_SORT_KEYS), "sha256"
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class DesiredEntry:
    """One integration as the desired state wants it; never holds secret values."""

    id: str
    version: str
    enabled: bool
    manifest: Mapping[str, Any]
    config: Mapping[str, Any]
    plugin: str | None = None
    capabilities: tuple[str, ...] = ("integrations",)
    depends_on: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()
    required_secrets: tuple[str, ...] = ()
    command_timeouts_ms: Mapping[str, int] = field(default_factory=dict)
    command_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    invalid: ReconcileError | None = None

    @property
    def spec_hash(self) -> str:
        """Hash of version and manifest: a change means an upgrade."""
        return canonical_hash({"version": self.version, "manifest": self.manifest})

    @property
    def config_hash(self) -> str:
        """Hash of the non-secret config: a change means a reconfigure."""
        return canonical_hash(self.config)

    @property
    def content_hash(self) -> str:
        """Hash of everything but secrets: a change resets the item's retries (§5.7)."""
        return canonical_hash(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """Return the entry as persisted: the wire form without ``secrets``."""
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "enabled": self.enabled,
            "manifest": dict(self.manifest),
            "config": dict(self.config),
        }
        if self.plugin is not None:
            out["plugin"] = self.plugin
        if self.invalid is not None:
            out["invalid"] = self.invalid.to_json()
        return out


@dataclass(frozen=True, slots=True)
class DesiredState:
    """A full desired snapshot at one revision, plus the secret values that came with it."""

    revision: int
    issued_at: str | None
    entries: Mapping[str, DesiredEntry]
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """Return the non-secret snapshot to persist (spec §5.1)."""
        return {
            "revision": self.revision,
            "issuedAt": self.issued_at,
            "integrations": [entry.snapshot() for entry in self.entries.values()],
        }

    def secret_values(self) -> list[str]:
        """Return every secret value held, for redaction."""
        return [value for values in self.secrets.values() for value in values.values()]


EMPTY: Final = DesiredState(revision=0, issued_at=None, entries={})


def parse_desired_state(payload: Any, *, with_secrets: bool = True) -> DesiredState:
    """Validate a DESIRED_STATE payload (or a stored snapshot) into a ``DesiredState``.

    Args:
        payload: The message payload.
        with_secrets: False for a snapshot read back from disk, which has none; secret
            fields are then not required to be present.

    Raises:
        DesiredStateError: The snapshot as a whole cannot be used.
    """
    if not isinstance(payload, Mapping):
        raise DesiredStateError("desired state must be a JSON object")
    revision = payload.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise DesiredStateError("desired state needs an integer revision >= 0")
    issued_at = payload.get("issuedAt")
    if issued_at is not None and not isinstance(issued_at, str):
        raise DesiredStateError("issuedAt must be a string")
    raw_entries = payload.get("integrations", [])
    if not isinstance(raw_entries, list):
        raise DesiredStateError("integrations must be a list")
    entries: dict[str, DesiredEntry] = {}
    secrets: dict[str, dict[str, str]] = {}
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            raise DesiredStateError(f"integrations[{index}] needs a string id")
        if raw["id"] in entries:
            raise DesiredStateError(f"integrations[{index}]: duplicate id {raw['id']!r}")
        entry, entry_secrets = _parse_entry(raw, with_secrets=with_secrets)
        entries[entry.id] = entry
        if entry_secrets and entry.invalid is None:
            secrets[entry.id] = entry_secrets
    return DesiredState(revision, issued_at, entries, secrets)


def _parse_entry(
    raw: Mapping[str, Any], *, with_secrets: bool
) -> tuple[DesiredEntry, dict[str, str]]:
    """Return the entry (``invalid`` set if it breaks a rule) and its secret values."""
    entry_id: str = raw["id"]
    problems: list[dict[str, str]] = []
    known = _ENTRY_KEYS if with_secrets else _ENTRY_KEYS | {"invalid"}
    for key in sorted(set(raw) - known):
        problems.append({"path": key, "message": "unknown field"})
    version = raw.get("version")
    if not isinstance(version, str) or not SEMVER_RE.match(version):
        problems.append({"path": "version", "message": "must be a SemVer string"})
        version = str(version)
    if not ID_RE.match(entry_id):
        problems.append({"path": "id", "message": f"must match {ID_RE.pattern}"})
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append({"path": "enabled", "message": "must be true or false"})
        enabled = True
    plugin = raw.get("plugin")
    if plugin is not None and (
        not isinstance(plugin, str) or not 0 < len(plugin) <= _PLUGIN_NAME_MAX
    ):
        problems.append({"path": "plugin", "message": "must be a plugin name"})
        plugin = None
    manifest_raw = raw.get("manifest")
    config_raw = raw.get("config", {})
    secrets_raw = raw.get("secrets") if with_secrets else None
    base = DesiredEntry(
        id=entry_id,
        version=version,
        enabled=enabled,
        manifest=dict(manifest_raw) if isinstance(manifest_raw, Mapping) else {},
        config=dict(config_raw) if isinstance(config_raw, Mapping) else {},
        plugin=plugin,
    )
    if problems:
        return _invalid(base, INVALID_MANIFEST, "the desired entry is malformed", problems), {}
    stored_error = raw.get("invalid") if not with_secrets else None
    if isinstance(stored_error, Mapping):
        # Persisted as invalid: keep the verdict, since its config was not kept (see _invalid).
        return _replace_invalid(base, ReconcileError.from_json(stored_error)), {}
    if not isinstance(manifest_raw, Mapping):
        issue = [{"path": "manifest", "message": "must be an object"}]
        return _invalid(base, INVALID_MANIFEST, "the manifest is missing", issue), {}
    try:
        manifest = validate_manifest(manifest_raw)
    except ManifestError as exc:
        issues = [
            {"path": f"manifest.{e['path']}".rstrip("."), "message": e["message"]}
            for e in exc.errors
        ]
        return _invalid(base, INVALID_MANIFEST, "the manifest is invalid", issues), {}
    mismatch = [
        {"path": f"manifest.{name}", "message": f"must equal the entry's {name} {want!r}"}
        for name, want, got in (
            ("id", entry_id, manifest.id),
            ("version", version, manifest.version),
        )
        if want != got
    ]
    if mismatch:
        return _invalid(
            base, INVALID_MANIFEST, "the manifest does not match the entry", mismatch
        ), {}
    entry = _with_manifest(base, manifest)
    secret_values, config_issues = _check_config(entry, config_raw, secrets_raw, manifest)
    if config_issues:
        return _invalid(entry, INVALID_CONFIG, "the config is invalid", config_issues), {}
    return entry, secret_values


def _with_manifest(entry: DesiredEntry, manifest: Manifest) -> DesiredEntry:
    secret_fields = manifest.secret_fields()
    return dataclasses.replace(
        entry,
        capabilities=manifest.capabilities,
        depends_on=manifest.depends_on,
        secret_fields=secret_fields,
        required_secrets=tuple(
            name for name in manifest.config_schema.get("required", ()) if name in secret_fields
        ),
        command_timeouts_ms={c.name: c.timeout_ms for c in manifest.commands},
        command_schemas={
            c.name: c.params_schema for c in manifest.commands if c.params_schema is not None
        },
    )


def _check_config(
    entry: DesiredEntry,
    config_raw: Any,
    secrets_raw: Any,
    manifest: Manifest,
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Check secret placement and validate config plus secrets against ``config_schema``."""
    if not isinstance(config_raw, Mapping):
        return {}, [{"path": "config", "message": "must be an object"}]
    if secrets_raw is not None and not isinstance(secrets_raw, Mapping):
        return {}, [{"path": "secrets", "message": "must be an object of strings"}]
    secret_fields = set(entry.secret_fields)
    issues = [
        {"path": f"config.{name}", "message": "is a secret field: send it in secrets, not config"}
        for name in sorted(secret_fields & set(config_raw))
    ]
    secrets = dict(secrets_raw or {})
    for name in sorted(secrets):
        if name not in secret_fields:
            issues.append(
                {"path": f"secrets.{name}", "message": "is not a secret field of the manifest"}
            )
        elif not isinstance(secrets[name], str):
            issues.append({"path": f"secrets.{name}", "message": "must be a string"})
    if issues:
        return {}, issues
    combined = {**config_raw, **secrets}
    schema = dict(manifest.config_schema)
    # Secret values the daemon does not hold (a snapshot from disk, a hub that lost them) are
    # not a config error: the step that needs them waits with SECRETS_UNAVAILABLE (§5.1).
    required = schema.get("required", [])
    schema["required"] = [n for n in required if n not in secret_fields or n in secrets]
    return secrets, schema_issues(schema, combined, "config", secrets.values())


def schema_issues(
    schema: Mapping[str, Any], value: Any, prefix: str, secrets: Iterable[str]
) -> list[dict[str, str]]:
    """Validate ``value`` with JSON Schema 2020-12; messages never carry a secret value."""
    from jsonschema import Draft202012Validator  # heavy import, only when a schema is checked

    validator = Draft202012Validator(dict(schema))
    hidden = list(secrets)
    secret_names = {
        name
        for name, spec in schema.get("properties", {}).items()
        if isinstance(spec, Mapping) and spec.get("x-secret") is True
    }
    issues = []
    for error in sorted(
        validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]
    ):
        parts = [str(part) for part in error.absolute_path]
        # Above a secret, or at the root (where most messages quote the whole object), only
        # the rule is named; `required` and friends name keys, never values.
        at_root_quoting = not parts and error.validator not in _KEY_NAMING_RULES
        if at_root_quoting or (parts and parts[0] in secret_names):
            message = f"fails the schema rule {error.validator!r} (secret value not shown)"
        else:
            message = redact(error.message, hidden)
        issues.append({"path": ".".join([prefix, *parts]), "message": message})
    return issues


def _invalid(
    entry: DesiredEntry, code: str, message: str, issues: list[dict[str, str]]
) -> DesiredEntry:
    error = ReconcileError(
        code, f"{entry.id}: {message}", retryable=False, details={"errors": issues}
    )
    return _replace_invalid(entry, error)


def _replace_invalid(entry: DesiredEntry, error: ReconcileError) -> DesiredEntry:
    """Return ``entry`` marked invalid; its config is dropped, as it may hold misplaced secrets."""
    return dataclasses.replace(entry, config={}, invalid=error)
