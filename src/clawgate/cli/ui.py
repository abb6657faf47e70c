"""`clawgate ui`: fetch OpenClaw's Control UI bundle for `[gateway] control_ui_root`."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Final

import typer

from ..service.paths import Paths, resolve_home

__all__ = ["app"]

app = typer.Typer(help="OpenClaw's web Control UI.", no_args_is_help=True)

#: The release the compatibility work was checked against (issue 21).
OPENCLAW_VERSION: Final = "2026.9.6"
_MEMBER: Final = "package/dist/control-ui/"


@app.command("fetch-openclaw")
def fetch_openclaw(
    version: Annotated[str, typer.Option(help="openclaw npm version")] = OPENCLAW_VERSION,
    dest: Annotated[
        Path | None, typer.Option(help="folder to unpack into (default <home>/control-ui)")
    ] = None,
) -> None:
    """Download the published openclaw package with npm and unpack its dist/control-ui."""
    if shutil.which("npm") is None:
        raise typer.BadParameter("npm is not installed; install Node.js (npm) and run again")
    target = dest or Paths(resolve_home()).home / "control-ui"
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            ["npm", "pack", f"openclaw@{version}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            check=False,
        )
        if packed.returncode != 0:
            typer.echo(f"npm pack openclaw@{version} failed: {packed.stderr.strip()}", err=True)
            raise typer.Exit(1)
        archive = Path(tmp) / packed.stdout.strip().splitlines()[-1]
        staging = Path(tmp) / "unpacked"
        import tarfile  # here: `gateway run` loads this module and must stay small

        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(_MEMBER)]
            tar.extractall(staging, members=members, filter="data")
        bundle = staging / _MEMBER
        if not (bundle / "index.html").is_file():
            typer.echo(f"openclaw@{version} holds no dist/control-ui/index.html", err=True)
            raise typer.Exit(1)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(bundle, target)
    typer.echo(f"Control UI {version} in {target}")
    typer.echo(f'Set [gateway] control_ui_root = "{target}" and open /control/ on the gateway.')
