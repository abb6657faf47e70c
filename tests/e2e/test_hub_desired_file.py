"""`clawgate hub desired set` takes the file `integrations apply` takes: TOML or JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_cli import CLAWGATE, env_for
from .test_hub_cli import hub_process

__all__ = ["hub_process"]

Hub = tuple[subprocess.Popen[str], int, Path]
EXAMPLE = Path(__file__).parents[2] / "examples" / "desired-state"
SECRET = "ghp_desired_file_secret_never_shown"


def hub_cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLAWGATE, "hub", *args],
        env=env_for(home, **extra),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("name", ["desired.toml", "desired.json"])
def test_the_example_file_sets_the_desired_state(
    hub_process: Hub, tmp_path: Path, name: str
) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy)
    done = hub_cli(home, "desired", "set", "box", str(copy / name), *url, GITHUB_TOKEN=SECRET)
    assert done.returncode == 0, done.stderr
    assert "desired state of box is now revision 1" in done.stdout
    shown = hub_cli(home, "desired", "get", "box", *url)
    assert shown.returncode == 0, shown.stderr
    assert SECRET not in shown.stdout
    [entry] = json.loads(shown.stdout)["integrations"]
    assert (entry["id"], entry["version"], entry["enabled"]) == ("github", "1.4.0", True)
    assert entry["config"] == {"org": "acme"}
    assert entry["secrets"] == ["token"]
    assert entry["manifest"]["name"] == "GitHub"


def test_a_secret_variable_that_is_not_set_is_named(hub_process: Hub) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    refused = hub_cli(home, "desired", "set", "box", str(EXAMPLE / "desired.toml"), *url)
    assert refused.returncode == 2
    assert "secret token: set the environment variable GITHUB_TOKEN" in refused.stderr


def test_an_unknown_key_is_refused_with_the_known_ones(hub_process: Hub, tmp_path: Path) -> None:
    _, port, home = hub_process
    file = tmp_path / "desired.toml"
    file.write_text('[[integrations]]\nmanifest = "x.toml"\nsecret_env = {}\n')
    refused = hub_cli(home, "desired", "set", "box", str(file), "--url", f"http://127.0.0.1:{port}")
    assert refused.returncode == 2
    assert "unknown key 'secret_env'" in refused.stderr and "secrets_env" in refused.stderr
