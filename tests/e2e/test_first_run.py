"""A first `gateway run` on a fresh home: what the user sees at the default log level."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import start_daemon, stop_daemon


def test_a_fresh_home_prints_no_migration_lines_at_info(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "fresh-home")
    code, output = stop_daemon(daemon)
    assert code == 0, output
    assert (tmp_path / "fresh-home" / "state.db").exists()
    assert "migrat" not in output.lower()
