"""Logging setup: stdout plus a size-rotated file, text or JSON lines."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Final

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "setup_logging"]

LOG_MAX_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5


def _subsystem(name: str) -> str:
    """Shorten `clawgate.gateway.connection` to `gateway.connection`."""
    return name.removeprefix("clawgate.")


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`<utc time> <LEVEL> <subsystem> [conn=<id>] <message>`."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a line of text."""
        ids = "".join(
            f" {key}={getattr(record, key)}"
            for key in ("conn", "plugin")
            if getattr(record, key, None)
        )
        line = (
            f"{_timestamp(record)} {record.levelname} {_subsystem(record.name)}{ids} "
            f"{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for machines."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON line."""
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "subsystem": _subsystem(record.name),
            "msg": record.getMessage(),
        }
        for key in ("conn", "plugin"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def _open_private(path: Path) -> None:
    """Create `path` with mode 0600 if missing, so the handler never makes it world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def setup_logging(level: str = "info", fmt: str = "text", log_file: Path | None = None) -> None:
    """Send clawgate's logs to stdout and, when given, to a rotated file."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _open_private(log_file)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
            )
        )
    root = logging.getLogger("clawgate")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # aiohttp's own loggers are noisy at info; keep their warnings.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
