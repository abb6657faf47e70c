"""Log lines: text or JSON, with timestamp, level, subsystem and connection id; rotated files."""

from __future__ import annotations

import logging
import logging.handlers
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from clawgate.service.logs import LOG_BACKUPS, LOG_MAX_BYTES, setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger("clawgate")
    handlers, level, propagate = list(root.handlers), root.level, root.propagate
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = propagate


def emit(log_file: Path, fmt: str) -> str:
    setup_logging("info", fmt, log_file)
    adapter = logging.LoggerAdapter(
        logging.getLogger("clawgate.gateway.connection"), {"conn": "c-1"}
    )
    adapter.info("connected %s", "cli/cli")
    for handler in logging.getLogger("clawgate").handlers:
        handler.flush()
    return log_file.read_text()


def test_text_lines_carry_time_level_subsystem_and_connection(tmp_path: Path) -> None:
    line = emit(tmp_path / "logs" / "gateway.log", "text").strip()
    assert line.endswith("INFO gateway.connection conn=c-1 connected cli/cli")
    assert line[:4].isdigit() and "Z " in line


def test_json_lines_are_objects(tmp_path: Path) -> None:
    entry = orjson.loads(emit(tmp_path / "gateway.log", "json").strip())
    assert entry["level"] == "info" and entry["subsystem"] == "gateway.connection"
    assert entry["conn"] == "c-1" and entry["msg"] == "connected cli/cli" and entry["ts"]


def test_file_is_private_and_rotated_by_size(tmp_path: Path) -> None:
    log_file = tmp_path / "gateway.log"
    setup_logging("info", "text", log_file)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    rotating = [
        h
        for h in logging.getLogger("clawgate").handlers
        if isinstance(h, logging.handlers.RotatingFileHandler)
    ]
    assert len(rotating) == 1
    assert (rotating[0].maxBytes, rotating[0].backupCount) == (LOG_MAX_BYTES, LOG_BACKUPS)
