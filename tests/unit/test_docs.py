"""The generated parts of README.md and docs/ match the code they are generated from."""

from __future__ import annotations

import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from clawgate.config import ClawgateConfig
from tests.tools.docs_gen import BLOCKS, DOCUMENTS, ROOT, readme_config, render

_MARKER = re.compile(r"<!-- generated:([a-z0-9-]+) -->")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_generated_blocks_are_up_to_date(name: str) -> None:
    text = (ROOT / name).read_text()
    assert render(text) == text, f"{name} is stale: run `make docs`"


def test_every_block_the_generator_knows_appears_in_a_document() -> None:
    used = {m for name in DOCUMENTS for m in _MARKER.findall((ROOT / name).read_text())}
    assert set(BLOCKS) - used == set()


def test_the_readme_config_block_parses_to_the_defaults() -> None:
    text = readme_config().removeprefix("```toml\n").removesuffix("\n```")
    assert ClawgateConfig.model_validate(tomllib.loads(text)) == ClawgateConfig()


def _leaf_fields(model: type[BaseModel], path: str) -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        if name == "accounts":
            continue  # named accounts repeat their channel's keys, documented there
        sections = [
            arg
            for arg in (*typing.get_args(info.annotation), info.annotation)
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if sections:
            yield from _leaf_fields(sections[0], f"{path}{name}.")
        else:
            yield f"{path}{name}", info


def test_every_config_key_has_a_description() -> None:
    missing = [key for key, info in _leaf_fields(ClawgateConfig, "") if not info.description]
    assert missing == []


_LINK = re.compile(r"\]\((?!https?:|#)([^)#\s]+)(?:#([^)\s]+))?\)")
_DOCS = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]


def _anchors(path: Path) -> set[str]:
    """Return the anchors GitHub gives the headings of a Markdown file."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("name", _DOCS)
def test_relative_links_point_at_files_and_headings_that_exist(name: str) -> None:
    source = ROOT / name
    broken = []
    for target, anchor in _LINK.findall(source.read_text()):
        path = (source.parent / target).resolve()
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}#{anchor}")
    assert broken == []


@pytest.mark.parametrize("name", _DOCS)
def test_no_section_of_a_document_outside_the_repo_is_cited(name: str) -> None:
    assert [line for line in (ROOT / name).read_text().splitlines() if "§" in line] == []
