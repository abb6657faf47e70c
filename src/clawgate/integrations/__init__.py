"""Integrations: the manifest format (spec §6)."""

from .manifest import (
    CommandSpec,
    Manifest,
    ManifestError,
    ManifestIssue,
    load_manifest_file,
    validate_manifest,
)

__all__ = [
    "CommandSpec",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "load_manifest_file",
    "validate_manifest",
]
