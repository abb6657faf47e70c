"""A canvas file's version (canvas/files.py): what a page shows, compared with the file now."""

from __future__ import annotations

import os
from pathlib import Path

from clawgate.canvas.files import current_version, file_version


def write_whole(path: Path, text: str) -> None:
    draft = path.with_name(f".{path.name}.tmp")
    draft.write_text(text, encoding="utf-8")
    draft.replace(path)


def test_a_file_left_alone_keeps_its_version(tmp_path: Path) -> None:
    write_whole(tmp_path / "a.html", "one")
    assert current_version(tmp_path, "a.html") == file_version(os.stat(tmp_path / "a.html"))
    assert current_version(tmp_path, "a.html") == current_version(tmp_path, "a.html")


def test_the_same_bytes_renamed_in_are_a_new_version(tmp_path: Path) -> None:
    write_whole(tmp_path / "a.html", "same")
    before = current_version(tmp_path, "a.html")
    # Same size, and within the filesystem's mtime tick: only the new inode tells them apart.
    write_whole(tmp_path / "a.html", "same")
    assert current_version(tmp_path, "a.html") != before


def test_a_missing_file_has_no_version(tmp_path: Path) -> None:
    assert current_version(tmp_path, "gone.html") is None
