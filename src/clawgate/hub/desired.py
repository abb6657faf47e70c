"""Validate a desired-state write and split it into stored form and secrets (spec §5, §6).

Pure: every problem is reported at once as ``{path, message}``; a message never contains a
secret value (anything under ``secrets`` or a config field the manifest marks secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaValidationError

from ..integrations import ManifestError, validate_manifest
from ..protocol.control_link import MessageIssue

__all__ = ["DesiredInput", "DesiredInvalid", "validate_desired"]

_MAX_INTEGRATIONS: Final = 500
_MAX_MESSAGE: Final = 200


class DesiredInvalid(ValueError):
    """The write broke one or more rules; ``errors`` lists all of them."""

    def __init__(self, errors: list[MessageIssue]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s) in the desired state")


@dataclass(frozen=True, slots=True)
class DesiredInput:
    """A validated write: stored entries (secret names only) and the secret values."""

    integrations: list[dict[str, Any]]
    #: integration id -> {secret name -> value}
    secrets: dict[str, dict[str, str]]
    if_revision: int | None


def _issue(path: str, message: str) -> MessageIssue:
    return MessageIssue(path=path, message=message)


def _schema_path(base: str, parts: Any) -> str:
    path = base
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _schema_message(error: SchemaValidationError, secret_names: frozenset[str]) -> str:
    location = list(error.absolute_path)
    if location and location[0] in secret_names:
        return f"does not satisfy '{error.validator}' of config_schema (value hidden: secret)"
    if not location and error.validator not in ("required", "additionalProperties"):
        # At the root the message could quote the whole object, secrets included.
        return f"config does not satisfy '{error.validator}' of config_schema"
    message = str(error.message)
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


class _Checker:
    def __init__(self) -> None:
        self.errors: list[MessageIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(_issue(path, message))

    def entry(
        self, index: int, raw: object, seen: set[str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        base = f"integrations[{index}]"
        if not isinstance(raw, Mapping):
            self.fail(base, "must be an object with id, version, manifest and config")
            return {}, {}
        entry_id = raw.get("id")
        version = raw.get("version")
        enabled = raw.get("enabled", True)
        manifest_raw = raw.get("manifest")
        config = raw.get("config", {})
        secrets = raw.get("secrets") or {}
        plugin = raw.get("plugin")
        if not isinstance(entry_id, str) or not entry_id:
            self.fail(f"{base}.id", "is required and must be a string")
        elif entry_id in seen:
            self.fail(f"{base}.id", f"duplicate integration id {entry_id!r}; ids must be unique")
        else:
            seen.add(entry_id)
        if not isinstance(version, str) or not version:
            self.fail(f"{base}.version", "is required and must be a string")
        if not isinstance(enabled, bool):
            self.fail(f"{base}.enabled", "must be true or false")
        if plugin is not None and (not isinstance(plugin, str) or not plugin):
            self.fail(f"{base}.plugin", "must be a plugin name")
        if not isinstance(config, Mapping):
            self.fail(f"{base}.config", "must be an object")
            config = {}
        if not isinstance(secrets, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()
        ):
            self.fail(f"{base}.secrets", "must be an object of string values")
            secrets = {}
        if not isinstance(manifest_raw, Mapping):
            self.fail(f"{base}.manifest", "is required and must be an object (spec §6)")
            return {}, {}
        try:
            manifest = validate_manifest(manifest_raw)
        except ManifestError as exc:
            for issue in exc.errors:
                where = f"{base}.manifest" + (f".{issue['path']}" if issue["path"] else "")
                self.fail(where, issue["message"])
            return {}, {}
        if isinstance(entry_id, str) and entry_id != manifest.id:
            self.fail(f"{base}.id", f"is {entry_id!r} but the manifest's id is {manifest.id!r}")
        if isinstance(version, str) and version != manifest.version:
            self.fail(
                f"{base}.version",
                f"is {version!r} but the manifest's version is {manifest.version!r}",
            )
        secret_names = frozenset(manifest.secret_fields())
        for name in config:
            if name in secret_names:
                self.fail(
                    f"{base}.config.{name}",
                    "is a secret field (x-secret) of the manifest; send it in secrets, not config",
                )
        for name in secrets:
            if name not in secret_names:
                self.fail(f"{base}.secrets.{name}", "is not a secret field of the manifest")
        self.check_config(base, manifest.to_dict()["config_schema"], config, secrets, secret_names)
        stored = {
            "id": manifest.id,
            "version": manifest.version,
            "enabled": enabled,
            "manifest": manifest.to_dict(),
            "config": dict(config),
            "secretNames": sorted(secrets),
        }
        if plugin is not None:
            stored["plugin"] = plugin
        return stored, dict(secrets)

    def check_config(
        self,
        base: str,
        schema: dict[str, Any],
        config: Mapping[str, Any],
        secrets: Mapping[str, str],
        secret_names: frozenset[str],
    ) -> None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            self.fail(
                f"{base}.manifest.config_schema", f"is not a valid JSON Schema: {exc.message}"
            )
            return
        merged = {**{k: v for k, v in config.items() if k not in secret_names}, **secrets}
        validator = Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path)):
            parts = list(error.absolute_path)
            where = "secrets" if parts and parts[0] in secret_names else "config"
            self.fail(_schema_path(f"{base}.{where}", parts), _schema_message(error, secret_names))


def validate_desired(body: object) -> DesiredInput:
    """Check a ``PUT …/desired-state`` body.

    Raises:
        DesiredInvalid: listing every problem.
    """
    checker = _Checker()
    if not isinstance(body, Mapping):
        raise DesiredInvalid([_issue("", "the body must be a JSON object with integrations")])
    integrations = body.get("integrations")
    if_revision = body.get("ifRevision")
    if if_revision is not None and (
        not isinstance(if_revision, int) or isinstance(if_revision, bool) or if_revision < 0
    ):
        checker.fail("ifRevision", "must be a non-negative integer")
    if not isinstance(integrations, list):
        checker.fail("integrations", "is required and must be a list (it may be empty)")
        raise DesiredInvalid(checker.errors)
    if len(integrations) > _MAX_INTEGRATIONS:
        checker.fail(
            "integrations", f"has {len(integrations)} entries; at most {_MAX_INTEGRATIONS}"
        )
        raise DesiredInvalid(checker.errors)
    seen: set[str] = set()
    stored: list[dict[str, Any]] = []
    secrets: dict[str, dict[str, str]] = {}
    for index, raw in enumerate(integrations):
        entry, values = checker.entry(index, raw, seen)
        if entry:
            stored.append(entry)
            if values:
                secrets[entry["id"]] = values
    if checker.errors:
        raise DesiredInvalid(checker.errors)
    return DesiredInput(stored, secrets, if_revision)
