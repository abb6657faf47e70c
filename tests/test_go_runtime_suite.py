"""The tests that load neonize's Go runtime, run in a pytest process of their own.

neonize (personal WhatsApp) loads whatsmeow as a Go shared library: importing it starts Go's
runtime threads and signal handling inside the process for the rest of its life. Kept out of
the workers that run everything else (see `GO_RUNTIME_TESTS` in tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import GO_RUNTIME_ENV, GO_RUNTIME_TESTS

ROOT = Path(__file__).resolve().parent.parent


def test_the_tests_that_load_neonizes_go_runtime_pass_in_a_process_of_their_own() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GO_RUNTIME_TESTS],
        cwd=ROOT,
        env={**os.environ, GO_RUNTIME_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    # 0 only when tests ran and all passed (none collected is 5).
    assert done.returncode == 0, f"{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
