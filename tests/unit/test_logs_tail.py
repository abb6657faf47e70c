"""`logs.tail` reading by byte cursor (spec §10.1)."""

from pathlib import Path

from clawgate.gateway.methods.logs import read_tail


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def test_without_cursor_returns_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    write(log, [f"line {i}" for i in range(10)])
    result = read_tail(log, None, limit=3, max_bytes=10_000)
    assert result["lines"] == ["line 7", "line 8", "line 9"]
    assert result["cursor"] == result["size"] == log.stat().st_size
    assert result["file"] == "gateway.log"


def test_cursor_reads_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    write(log, ["a", "b"])
    first = read_tail(log, None, 200, 10_000)
    with log.open("a") as handle:
        handle.write("c\nd\npartial")
    second = read_tail(log, first["cursor"], 200, 10_000)
    assert second["lines"] == ["c", "d"]
    assert second["cursor"] == first["cursor"] + 4


def test_cursor_past_end_resets(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    write(log, ["fresh"])
    result = read_tail(log, 10_000, 200, 10_000)
    assert result["reset"] is True
    assert result["lines"] == ["fresh"]


def test_max_bytes_truncates(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    write(log, ["x" * 10 for _ in range(10)])
    result = read_tail(log, 0, 200, 25)
    assert result["lines"] == ["x" * 10, "x" * 10]
    assert result["truncated"] is True
    assert result["cursor"] == 22


def test_limit_caps_lines_and_cursor(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    write(log, ["a", "b", "c"])
    result = read_tail(log, 0, 2, 10_000)
    assert result["lines"] == ["a", "b"]
    assert result["cursor"] == 4


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "nope.log", None, 10, 100)["lines"] == []
