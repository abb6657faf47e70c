"""Run one program for `system.run`: no shell, a clean environment, a deadline, capped output.

The child gets its own process group, so a timeout or a cancel kills everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["RunResult", "run_program"]

_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a finished (or killed) program produced."""

    exit_code: int | None
    timed_out: bool
    stdout: bytes
    stderr: bytes
    truncated: bool


async def _drain(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Read a stream to its end, keeping at most `cap` bytes; return them and whether cut."""
    kept = bytearray()
    cut = False
    while chunk := await stream.read(_CHUNK):
        room = cap - len(kept)
        if len(chunk) > room:
            cut = True
        if room > 0:
            kept += chunk[:room]
    return bytes(kept), cut


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_program(
    argv: Sequence[str],
    *,
    cwd: str | None,
    env: Mapping[str, str],
    timeout_s: float,
    output_cap: int,
) -> RunResult:
    """Run `argv` directly (never through a shell) and collect its output.

    Raises:
        OSError: the program cannot be started (not found, not executable, bad cwd).
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    readers = asyncio.gather(_drain(process.stdout, output_cap), _drain(process.stderr, output_cap))
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            # Shielded: on timeout the readers go on and collect what came before the kill.
            (out, out_cut), (err, err_cut) = await asyncio.shield(readers)
            exit_code: int | None = await process.wait()
    except TimeoutError:
        timed_out = True
        _kill_group(process)
        await process.wait()
        (out, out_cut), (err, err_cut) = await readers
        exit_code = None
    except BaseException:
        # Cancelled (the gateway sent node.invoke.cancel, or the host stops): leave nothing.
        _kill_group(process)
        readers.cancel()
        with contextlib.suppress(BaseException):
            await process.wait()
        raise
    return RunResult(exit_code, timed_out, out, err, out_cut or err_cut)
