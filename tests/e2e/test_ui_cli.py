"""`clawgate ui fetch-openclaw` against a stand-in `npm` that packs a tiny openclaw tarball."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.e2e.test_cli import run_cli

# Writes openclaw-<v>.tgz holding package/dist/control-ui/index.html, as `npm pack` would.
FAKE_NPM = """#!/bin/sh
set -e
dest=""; spec=""
while [ $# -gt 0 ]; do
  case "$1" in --pack-destination) dest="$2"; shift;; pack|--silent) ;; *) spec="$1";; esac
  shift
done
work=$(mktemp -d)
mkdir -p "$work/package/dist/control-ui"
echo "<html>$spec</html>" > "$work/package/dist/control-ui/index.html"
tar -czf "$dest/openclaw.tgz" -C "$work" package
echo openclaw.tgz
"""


def test_fetch_openclaw_unpacks_the_bundle_into_the_home(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    result = run_cli(home, "ui", "fetch-openclaw", "--version", "1.2.3", PATH=path)
    assert result.returncode == 0, result.stderr
    assert (home / "control-ui" / "index.html").read_text().strip() == "<html>openclaw@1.2.3</html>"
