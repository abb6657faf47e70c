"""The lazy method index in `gateway/methods/__init__.py` agrees with the `@method` declarations."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest
from pydantic import BaseModel

from clawgate.gateway import methods
from clawgate.gateway.methods import METHODS, build_registry
from clawgate.gateway.registry import Deferred, MethodRegistry, MethodSpec


def _declared_in_modules() -> dict[str, str]:
    """Return every `@method` name found in the method modules, with its module."""
    declared: dict[str, str] = {}
    for info in pkgutil.iter_modules(methods.__path__):
        module = importlib.import_module(f"{methods.__name__}.{info.name}")
        for value in vars(module).values():
            spec = getattr(value, "__gateway_method__", None)
            if isinstance(spec, MethodSpec) and value.__module__ == module.__name__:
                declared[spec.name] = info.name
    return declared


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_every_listed_method_loads_a_handler_declared_under_its_name() -> None:
    loaded = [spec.name for spec in build_registry()]  # iterating imports every module
    assert loaded == [name for name, _, _ in METHODS]


def test_every_method_declared_in_a_method_module_is_listed_with_that_module() -> None:
    listed = {name: module for name, module, _ in METHODS}
    assert _declared_in_modules() == listed


def test_every_deferred_event_payload_loads_a_model() -> None:
    for declaration in build_registry().event_declarations():
        assert isinstance(declaration.payload, type), declaration.name
        assert issubclass(declaration.payload, BaseModel), declaration.name


def test_a_method_listed_under_another_name_fails_to_load() -> None:
    registry = MethodRegistry()
    registry.declare("status", Deferred(f"{methods.__name__}.system", "health"))
    with pytest.raises(TypeError, match="declares health, listed as status"):
        registry.get("status")


def test_a_new_gateway_has_loaded_no_method_module_nor_the_schema_models() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import tempfile\n"
        "import clawgate.cli.main, clawgate.service.runtime\n"
        "from clawgate.gateway.server import GatewayServer\n"
        "from clawgate.gateway.settings import GatewaySettings\n"
        "from clawgate.protocol.auth import AuthMode, SharedSecretAuth\n"
        "home = Path(tempfile.mkdtemp())\n"
        "server = GatewayServer(GatewaySettings(home=home,"
        " auth=SharedSecretAuth(AuthMode.TOKEN, 't')))\n"
        "assert 'health' in server.methods.method_names()\n"
        "lazy = ('clawgate.gateway.methods.', 'clawgate.protocol.schema',"
        " 'clawgate.protocol.shapes')\n"
        "print([m for m in sys.modules if m.startswith(lazy)])\n"
    )
    assert _run(code) == "[]"


def test_the_first_call_of_a_method_loads_its_module_only() -> None:
    code = (
        "import sys\n"
        "from clawgate.gateway.methods import build_registry\n"
        "build_registry().get('logs.tail')\n"
        "print(sorted(m for m in sys.modules if m.startswith('clawgate.gateway.methods.')))\n"
    )
    assert _run(code) == str(["clawgate.gateway.methods._common", "clawgate.gateway.methods.logs"])
