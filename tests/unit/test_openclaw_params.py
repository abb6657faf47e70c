"""Params OpenClaw 2026.9.6 defines are accepted; the ignored ones are documented."""

from __future__ import annotations

import re
from pathlib import Path

from clawgate.gateway.methods import build_registry
from clawgate.gateway.methods._common import IGNORED_MARK

DOC = Path(__file__).resolve().parents[2] / "docs" / "openclaw-control-ui.md"


def ignored_fields() -> dict[str, list[str]]:
    """Return each method's params declared `Ignored`, in declaration order."""
    found: dict[str, list[str]] = {}
    for spec in build_registry():
        names = [
            name
            for name, info in spec.params.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(IGNORED_MARK)
        ]
        if names:
            found[spec.name] = names
    return found


def test_every_ignored_param_is_listed_in_the_protocol_docs() -> None:
    text = DOC.read_text()
    section = text.split("## Accepted and ignored", 1)[1].split("\n## ", 1)[0]
    listed = {
        match.group(1): re.findall(r"`([A-Za-z]+)`", match.group(2))
        for match in re.finditer(r"^- `([\w.-]+)`: (.+)$", section, re.MULTILINE)
    }
    assert listed == ignored_fields()
