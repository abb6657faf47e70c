"""Migration list rules, SQL script splitting and error messages of the state store."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import pytest

import clawgate
from clawgate.store import MIGRATIONS, Migration, StateStore, StoreTooNewError
from clawgate.store._migrations import latest_version, run_migrations, split_script
from clawgate.store._sqlite import is_corruption


def noop(conn: sqlite3.Connection) -> None:
    """Change nothing."""


def test_builtin_migrations_are_numbered_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert latest_version(MIGRATIONS) == len(MIGRATIONS)


def test_no_migrations_means_version_zero() -> None:
    assert latest_version(()) == 0


@pytest.mark.parametrize("versions", [[0], [2], [1, 3], [2, 1], [1, 1]])
def test_gaps_duplicates_and_disorder_are_rejected(versions: list[int]) -> None:
    with pytest.raises(ValueError, match=r"1\.\.N"):
        latest_version([Migration(v, f"v{v}", noop) for v in versions])


def test_store_rejects_a_bad_list_before_touching_the_disk(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StateStore(tmp_path / "state.db", migrations=[Migration(2, "two", noop)])
    assert not (tmp_path / "state.db").exists()


def test_split_script_keeps_semicolons_inside_strings_and_triggers() -> None:
    script = """
        CREATE TABLE t (x TEXT);  -- a comment; with a semicolon
        INSERT INTO t VALUES ('a;b');
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN
            INSERT INTO t VALUES ('x;'); SELECT 1;
        END;
    """
    statements = split_script(script)
    assert len(statements) == 3
    assert statements[0] == "CREATE TABLE t (x TEXT);"
    assert statements[1].startswith("-- a comment; with")
    assert statements[1].endswith("INSERT INTO t VALUES ('a;b');")
    assert statements[2].startswith("CREATE TRIGGER")
    assert statements[2].endswith("END;")


def test_split_script_keeps_a_last_statement_without_semicolon() -> None:
    assert split_script("SELECT 1; SELECT 2") == ["SELECT 1;", "SELECT 2"]


def test_split_script_of_blank_text_is_empty() -> None:
    assert split_script("  ;\n ; ") == []


def test_too_new_error_says_to_upgrade() -> None:
    error = StoreTooNewError(Path("/h/state.db"), 7, 3)
    assert "upgrade clawgate" in str(error)
    assert (error.found, error.known) == (7, 3)


@pytest.mark.parametrize(
    ("code", "corrupt"),
    [
        (sqlite3.SQLITE_CORRUPT, True),
        (sqlite3.SQLITE_NOTADB, True),
        (sqlite3.SQLITE_CORRUPT | (1 << 8), True),  # an extended code: SQLITE_CORRUPT_VTAB
        (sqlite3.SQLITE_BUSY, False),
        (sqlite3.SQLITE_CANTOPEN, False),
    ],
)
def test_only_damage_counts_as_corruption(code: int, corrupt: bool) -> None:
    error = sqlite3.DatabaseError("x")
    error.sqlite_errorcode = code
    assert is_corruption(error) is corrupt


def test_only_the_store_package_imports_sqlite3() -> None:
    package = Path(clawgate.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "store" not in path.relative_to(package).parts[:1]
        and re.search(r"^\s*(import sqlite3|from sqlite3\b)", path.read_text(), re.MULTILINE)
    ]
    assert offenders == [], "only clawgate.store may use sqlite3 (DESIGN: one owner per resource)"


def _migration_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= level and "migrated" in record.getMessage()
    ]


def test_a_fresh_file_is_migrated_without_info_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clawgate.store")
    conn = sqlite3.connect(tmp_path / "state.db")
    run_migrations(conn, [Migration(1, "one", noop), Migration(2, "two", noop)], tmp_path)
    assert _migration_records(caplog, logging.INFO) == []
    assert len(_migration_records(caplog, logging.DEBUG)) == 2


def test_upgrading_an_existing_file_says_so_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clawgate.store")
    conn = sqlite3.connect(tmp_path / "state.db")
    run_migrations(conn, [Migration(1, "one", noop)], tmp_path)
    run_migrations(conn, [Migration(1, "one", noop), Migration(2, "two", noop)], tmp_path)
    assert len(_migration_records(caplog, logging.INFO)) == 1
    assert "schema version 2: two" in _migration_records(caplog, logging.INFO)[0]
