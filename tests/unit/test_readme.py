"""The README names every method and event the gateway serves."""

from __future__ import annotations

from pathlib import Path

from clawgate.gateway.methods import build_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_method_and_event_is_named_in_the_readme() -> None:
    text = README.read_text()
    registry = build_registry()
    missing = [
        name
        for name in [*registry.method_names(), *registry.event_names()]
        if f"`{name}`" not in text
    ]
    assert missing == []
