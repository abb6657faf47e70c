"""The IPC baseline: a bare NDJSON server on a Unix socket answering every request at once.

Run as its own process: `python -m bench.ipc_echo --socket PATH`. It runs on uvloop like the
gateway and does the least a plugin-IPC server can do per frame: split lines, parse each
request with orjson and write one response of the shape the gateway sends to `ping`:
`{"type":"res","id":…,"ok":true,"payload":{"now":"<RFC 3339 ms>"}}` (a fixed time, same size).

Every request is answered that way, `register` included, so the unmodified plugin SDK can
talk to it: the client side of a round trip is then the same code against both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Final

import orjson
import uvloop

__all__ = ["main", "serve"]

_READ_CHUNK: Final = 65_536
#: A fixed time with the gateway's format and length (`2026-01-01T00:00:00.000Z`).
_NOW: Final = "2026-01-01T00:00:00.000Z"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request line on one connection until EOF."""
    pending = b""
    try:
        while data := await reader.read(_READ_CHUNK):
            *lines, pending = (pending + data).split(b"\n")
            out = []
            for line in lines:
                if not line.strip():
                    continue
                frame = orjson.loads(line)
                if frame.get("type") == "req":
                    response = {"type": "res", "id": frame.get("id"), "ok": True}
                    response["payload"] = {"now": _NOW}
                    out.append(orjson.dumps(response) + b"\n")
            if out:
                writer.write(b"".join(out))
                await writer.drain()
    except (ConnectionError, orjson.JSONDecodeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def _remove(socket_path: Path) -> None:
    """Remove the socket file if it is there."""
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()


async def serve(socket_path: Path) -> None:
    """Serve on `socket_path` (mode 0600) until SIGTERM or SIGINT."""
    _remove(socket_path)
    server = await asyncio.start_unix_server(_answer, path=str(socket_path))
    os.chmod(socket_path, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        _remove(socket_path)


def main() -> None:
    """Parse arguments and run the echo server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.socket))


if __name__ == "__main__":
    main()
