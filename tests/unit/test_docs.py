"""The generated parts of README.md and docs/ match the code they are generated from."""

from __future__ import annotations

import re

import pytest

from tests.tools.docs_gen import DOCUMENTS, ROOT, render


@pytest.mark.parametrize("name", DOCUMENTS)
def test_generated_blocks_are_up_to_date(name: str) -> None:
    text = (ROOT / name).read_text()
    assert render(text) == text, f"{name} is stale: run `make docs`"


def test_links_to_docs_files_point_at_files_that_exist() -> None:
    missing = []
    for name in DOCUMENTS:
        base = (ROOT / name).parent
        for target in re.findall(
            r"\]\(((?:\.\./|docs/)?[\w./-]+\.(?:md|json))(?:#[^)]*)?\)", (ROOT / name).read_text()
        ):
            if not (base / target).is_file():
                missing.append(f"{name}: {target}")
    assert missing == []
