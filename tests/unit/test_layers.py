"""The house's layers hold: no import cycle between files, no import from a higher layer.

Every import counts: at module level, inside functions and under `TYPE_CHECKING`. A lazy
import still is a dependency; it only changes when the module loads.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import clawgate

ROOT = Path(clawgate.__file__).parent

#: Lowest first. A module may import its own layer and the layers below it, never above.
#: Packages of one layer may import each other, but no two files may import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"protocol"}),
    frozenset({"files", "web"}),  # web: the static WebChat assets
    frozenset({"store"}),
    frozenset(
        {
            "agents",
            "automation",
            "bus",
            "canvas",
            "channels",
            "client",
            "cloud",
            "commands",
            "config",
            "config_file",
            "integrations",
            "ipc",
            "node",
            "plugin",
            "tls",
        }
    ),
    frozenset({"gateway", "hub"}),
    frozenset({"service"}),
    frozenset({"cli"}),
)


def _module_name(path: Path) -> str:
    parts = ["clawgate", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """Return the clawgate modules `module` imports, wherever the import statement is."""
    modules = _modules()
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif target in modules:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
    found.discard(module)
    return found


def _layer_of(module: str) -> int | None:
    """Return the layer index of a module; None for the package root (`clawgate`)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None  # clawgate/__init__.py: the version, imported by every layer
    for index, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return index
    raise AssertionError(f"{module} is in no layer; add its package to LAYERS")


def _cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Yield every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0

    def visit(node: str) -> Iterator[list[str]]:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                yield from visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


#: Modules that load a Go runtime when imported (neonize): checked in a process of their own,
#: as the tests that use them are (`GO_RUNTIME_TESTS` in tests/conftest.py).
GO_RUNTIME_MODULES = ("clawgate.channels.whatsapp_web",)


@pytest.mark.parametrize(
    "module",
    sorted(m for m in _modules() if not m.endswith("__main__") and m not in GO_RUNTIME_MODULES),
)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("module", GO_RUNTIME_MODULES)
def test_every_go_runtime_module_imports_in_its_own_process(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_every_package_is_in_a_layer() -> None:
    for module in _modules():
        _layer_of(module)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = []
    for module in sorted(_modules()):
        layer = _layer_of(module)
        for imported in sorted(_imports(module)):
            target = _layer_of(imported)
            if layer is not None and target is not None and target > layer:
                upward.append(f"{module} -> {imported}")
    assert upward == []


def test_no_import_cycle_between_files() -> None:
    graph = {module: _imports(module) for module in _modules()}
    assert list(_cycles(graph)) == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(_cycles(graph)) == [["a", "b", "c"]]
    assert _layer_of("clawgate.protocol.frames") < _layer_of("clawgate.gateway.server")  # type: ignore[operator]
