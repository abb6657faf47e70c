"""Integrations driven through the CLI: a daemon, the example plugin and the files it writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli import env_for, run_cli
from tests.e2e.test_daemon import configure, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-value-40417"


def write_manifest(folder: Path, item_id: str, depends_on: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True)
    deps = ", ".join(f'"{dep}"' for dep in depends_on)
    folder.joinpath("clawgate-integration.toml").write_text(
        f'id = "{item_id}"\nversion = "1.0.0"\nname = "{item_id.title()}"\n'
        f"depends_on = [{deps}]\n"
        '[config_schema]\ntype = "object"\n'
        '[config_schema.properties.greeting]\ntype = "string"\n'
        '[config_schema.properties.token]\ntype = "string"\nx-secret = true\n'
    )


def write_desired(path: Path, greetings: dict[str, str]) -> None:
    blocks = []
    for item_id, greeting in greetings.items():
        block = f'[[integrations]]\nmanifest = "{item_id}/clawgate-integration.toml"\n'
        block += f'[integrations.config]\ngreeting = "{greeting}"\n'
        if item_id == "crm":
            block += '[integrations.secrets_env]\ntoken = "CRM_TOKEN"\n'
        blocks.append(block)
    path.write_text("\n".join(blocks))


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    configure(home, free_port())
    started = run_cli(home, "gateway", "start")
    assert started.returncode == 0, started.stderr + started.stdout
    yield home
    run_cli(home, "gateway", "stop")


@pytest.fixture
def plugin_root(home: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "plugin-root"
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.dir_integrations", "--root", str(root)],
        env=env_for(home, PYTHONPATH=str(REPO_ROOT)),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield root
    process.terminate()
    _, stderr = process.communicate(timeout=10)
    assert SECRET.encode() not in stderr


def integrations(home: Path) -> dict[str, Any]:
    listed = run_cli(home, "integrations", "--json")
    assert listed.returncode == 0, listed.stderr
    return dict(json.loads(listed.stdout))


def wait_converged(home: Path, revision: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = integrations(home)
        if view["appliedRevision"] >= revision and view["converged"]:
            return view
        time.sleep(0.1)
    raise AssertionError(f"not converged at revision {revision}: {view}")


def journal(root: Path) -> list[tuple[str, str]]:
    lines = (root / ".journal").read_text().splitlines()
    return [(entry["op"], entry["id"]) for entry in map(json.loads, lines)]


def test_apply_a_file_then_change_and_remove(home: Path, plugin_root: Path, tmp_path: Path) -> None:
    desired_dir = tmp_path / "desired"
    write_manifest(desired_dir / "base", "base")
    write_manifest(desired_dir / "crm", "crm", depends_on=("base",))
    write_manifest(desired_dir / "mail", "mail")
    checked = run_cli(
        home, "manifest", "validate", str(desired_dir / "crm" / "clawgate-integration.toml")
    )
    assert checked.returncode == 0 and "crm 1.0.0: valid" in checked.stdout

    desired = desired_dir / "desired.toml"
    write_desired(desired, {"crm": "hi crm", "base": "hi base", "mail": "hi mail"})
    missing_env = run_cli(home, "integrations", "apply", str(desired))
    assert (
        missing_env.returncode == 1
        and "set the environment variable CRM_TOKEN" in missing_env.stderr
    )

    applied = run_cli(home, "integrations", "apply", str(desired), CRM_TOKEN=SECRET)
    assert applied.returncode == 0, applied.stderr
    assert "revision 1: applied" in applied.stdout
    view = wait_converged(home, 1)
    assert {row["id"]: row["status"] for row in view["integrations"]} == {
        "base": "active",
        "crm": "active",
        "mail": "active",
    }
    ops = journal(plugin_root)
    assert ops.index(("activate", "base")) < ops.index(("install", "crm"))
    assert json.loads((plugin_root / "crm" / "config.json").read_text()) == {"greeting": "hi crm"}
    table = run_cli(home, "integrations")
    assert "converged" in table.stdout and "dir-integrations" in table.stdout

    before = len(journal(plugin_root))
    write_desired(desired, {"crm": "hi crm", "base": "hello again"})
    assert run_cli(home, "integrations", "apply", str(desired), CRM_TOKEN=SECRET).returncode == 0
    wait_converged(home, 2)
    assert journal(plugin_root)[before:] == [
        ("deactivate", "mail"),
        ("remove", "mail"),
        ("configure", "base"),
    ]
    assert not (plugin_root / "mail").exists()

    stopped = run_cli(home, "gateway", "stop")
    assert stopped.returncode == 0
    for path in home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_manifest_validate_lists_every_broken_rule(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "clawgate-integration.toml"
    bad.write_text('id = "Bad Id"\nversion = "1"\nname = ""\nsurprise = 1\n')
    checked = run_cli(home, "manifest", "validate", str(bad))
    assert checked.returncode == 1
    for path in ("id", "version", "name", "surprise"):
        assert f"{path}:" in checked.stdout
