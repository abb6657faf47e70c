"""Read a desired-integrations file (TOML or JSON) into DESIRED_STATE entries.

The file lists ``integrations``; each names its manifest inline (a table) or as a path to a
``clawgate-integration.toml``/``.yaml`` relative to the file. Secret values may be given
inline under ``secrets`` or, better, by environment variable name under ``secrets_env`` so
the file itself holds none. ``id`` and ``version`` default to the manifest's.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .manifest import ManifestError, load_manifest_file

__all__ = ["DesiredFileError", "load_desired_file"]

_KEYS: Final = frozenset(
    {"id", "version", "enabled", "manifest", "config", "secrets", "secrets_env", "plugin"}
)


class DesiredFileError(ValueError):
    """The file cannot be turned into entries; the message names the place and the fix."""


def load_desired_file(path: Path, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """Return the DESIRED_STATE ``integrations`` the file describes.

    Raises:
        DesiredFileError: Unreadable file, bad syntax, unknown keys, a missing manifest file
            or environment variable.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DesiredFileError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DesiredFileError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from None
    items = data.get("integrations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise DesiredFileError(f"{path}: needs a list `integrations` (TOML: [[integrations]])")
    return [_entry(path, index, item, environ) for index, item in enumerate(items)]


def _entry(path: Path, index: int, item: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    where = f"{path}: integrations[{index}]"
    if not isinstance(item, dict):
        raise DesiredFileError(f"{where} must be a table")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise DesiredFileError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    manifest = item.get("manifest")
    if isinstance(manifest, str):
        try:
            manifest = load_manifest_file(path.parent / manifest).to_dict()
        except ManifestError as exc:
            raise DesiredFileError(f"{where}: manifest {manifest}: {exc}") from None
        except OSError as exc:
            raise DesiredFileError(
                f"{where}: cannot read manifest {manifest} ({exc.strerror})"
            ) from None
    if not isinstance(manifest, dict):
        raise DesiredFileError(f"{where}: `manifest` must be a table or a path to a manifest file")
    entry: dict[str, Any] = {
        "id": item.get("id", manifest.get("id")),
        "version": item.get("version", manifest.get("version")),
        "enabled": item.get("enabled", True),
        "manifest": manifest,
        "config": item.get("config", {}),
    }
    if "plugin" in item:
        entry["plugin"] = item["plugin"]
    secrets = dict(item.get("secrets", {}))
    for name, variable in dict(item.get("secrets_env", {})).items():
        value = environ.get(str(variable))
        if value is None:
            raise DesiredFileError(
                f"{where}: secret {name}: set the environment variable {variable}"
            )
        secrets[name] = value
    if secrets:
        entry["secrets"] = secrets
    return entry
