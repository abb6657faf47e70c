"""Figures, targets, statistics, the printed table and `results.json`."""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "Figure",
    "Measure",
    "Target",
    "machine_info",
    "percentile",
    "render_table",
    "write_results",
]


class Measure(StrEnum):
    """What a target compares: the figure itself or its ratio to the echo baseline."""

    VALUE = "value"
    RATIO = "ratio"


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue: `measure op bound`, op `<` (below), `<=` (at most) or `>=`."""

    op: str
    bound: float
    measure: Measure = Measure.VALUE

    def met(self, figure: Figure) -> bool | None:
        """Return whether `figure` meets the target, or None when it cannot be judged."""
        observed = figure.value if self.measure is Measure.VALUE else figure.ratio
        if observed is None or math.isnan(observed):
            return None
        if self.op == "<":
            return observed < self.bound
        if self.op == "<=":
            return observed <= self.bound
        return observed >= self.bound

    def describe(self, unit: str) -> str:
        """Return the target as text, e.g. `< 1000 ms` or `ratio >= 0.50`."""
        if self.measure is Measure.RATIO:
            return f"ratio {self.op} {self.bound:.2f}"
        return f"{self.op} {self.bound:g} {unit}"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure, its echo baseline and its target."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Value divided by baseline (latency: >1 is slower; throughput: <1 is slower)."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        """Return the `results` entry for this figure."""
        entry: dict[str, Any] = {"value": _round(self.value), "unit": self.unit}
        if self.baseline is not None:
            entry["baseline"] = _round(self.baseline)
        if self.ratio is not None:
            entry["ratio"] = round(self.ratio, 4)
        if self.target is not None:
            entry["target"] = self.target.describe(self.unit)
            entry["meets_target"] = self.target.met(self)
        if self.note:
            entry["note"] = self.note
        return entry


def _round(value: float) -> float:
    """Round to 4 significant digits, enough for noisy timings."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return value
    return round(value, max(0, 3 - math.floor(math.log10(abs(value)))))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `samples` (`fraction` in 0..1), NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    """Return the median, NaN when empty."""
    return statistics.median(samples) if samples else math.nan


def machine_info() -> dict[str, Any]:
    """Describe the machine the figures came from."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(path: Path, figures: Sequence[Figure], extra: dict[str, Any]) -> None:
    """Write `results.json` atomically (temp file, then rename)."""
    document = {
        "machine": machine_info(),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **extra,
        "results": {figure.name: figure.to_json() for figure in figures},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)


def _number(value: float | None, unit: str = "") -> str:
    """Format a number for the table."""
    if value is None or math.isnan(value):
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def render_table(figures: Sequence[Figure]) -> str:
    """Return the figures as an aligned plain-text table."""
    header = ("figure", "gateway", "echo baseline", "ratio", "target", "met")
    rows = [header]
    for figure in figures:
        met = None if figure.target is None else figure.target.met(figure)
        rows.append(
            (
                figure.name,
                _number(figure.value, figure.unit),
                _number(figure.baseline, figure.unit),
                "-" if figure.ratio is None else f"{figure.ratio:.2f}",
                "" if figure.target is None else figure.target.describe(figure.unit),
                {None: "", True: "yes", False: "NO"}[met],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    right = {1, 2, 3}
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
