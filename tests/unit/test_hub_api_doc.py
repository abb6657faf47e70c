"""docs/hub-api.md documents every route the hub declares, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from clawgate.hub.api import ROUTES

DOC = Path(__file__).parents[2] / "docs" / "hub-api.md"
HEADING = re.compile(r"^## (GET|POST|PUT|DELETE|PATCH) (\S+)$", re.MULTILINE)


def sections() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    found = list(HEADING.finditer(text))
    ends = [m.start() for m in found[1:]] + [len(text)]
    return {f"{m[1]} {m[2]}": text[m.end() : end] for m, end in zip(found, ends, strict=True)}


def test_every_declared_route_has_a_section_and_every_section_a_route() -> None:
    declared = {f"{route.method} {route.path}" for route in ROUTES}
    assert set(sections()) == declared


def test_each_section_names_the_routes_auth() -> None:
    documented = sections()
    for route in ROUTES:
        assert f"\nAuth: {route.auth}\n" in documented[f"{route.method} {route.path}"], route.path
