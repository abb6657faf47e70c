"""Every `details.code` is a named constant, used by name (protocol/detail_codes.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import clawgate
from clawgate.protocol import detail_codes
from clawgate.protocol.errors import ERROR_CODES

SERVER_PACKAGES = ("protocol", "gateway")
ROOT = Path(clawgate.__file__).parent


def _literal_codes(tree: ast.AST) -> list[tuple[int, str]]:
    """Return (line, value) of string literals given as a `code` in dicts or calls."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "code"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    found.append((node.lineno, value.value))
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    found.append((node.lineno, str(keyword.value.value)))
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0] if node.args else None
            if name == "AuthFailure" and isinstance(first, ast.Constant):
                found.append((node.lineno, str(first.value)))
    return found


def test_no_server_module_spells_a_code_as_a_literal() -> None:
    offenders = []
    for package in SERVER_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, value in _literal_codes(ast.parse(path.read_text())):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {value}")
    assert offenders == []


def test_detail_codes_are_unique_and_distinct_from_error_codes() -> None:
    codes = detail_codes.DETAIL_CODES
    assert len(set(codes)) == len(codes)
    assert not set(codes) & set(ERROR_CODES)
    exported = {getattr(detail_codes, name) for name in detail_codes.__all__ if name.isupper()}
    assert set(codes) - exported <= {c for c in codes if c.startswith("DEVICE_AUTH_")}
