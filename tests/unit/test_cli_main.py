"""`clawgate gateway run` loads only the `gateway` command group; other commands get all."""

from __future__ import annotations

import subprocess
import sys


def _cli_modules_after(code: str) -> str:
    """Run `code` in a fresh interpreter; return the `clawgate.cli` modules it loaded."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\n{code}\n"
            "print(sorted(m for m in sys.modules if m.startswith('clawgate.cli')))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]  # after whatever the command printed


def _run_main(*argv: str) -> str:
    return (
        f"sys.argv = ['clawgate', {', '.join(map(repr, argv))}]\n"
        "from clawgate.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )


def test_gateway_run_loads_no_other_command_group() -> None:
    expected = _cli_modules_after("import clawgate.cli.main, clawgate.cli.gateway")
    assert _cli_modules_after(_run_main("gateway", "run", "--help")) == expected


def test_other_commands_get_every_command_group() -> None:
    loaded = _cli_modules_after(_run_main("gateway", "status", "--help"))
    assert "['clawgate.cli', 'clawgate.cli._common'" in loaded
    assert "'clawgate.cli.chat'" in loaded
    assert "'clawgate.cli.hub'" in loaded
