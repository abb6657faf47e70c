"""Plugin IPC protocol version 1, without I/O (control-plane spec §2).

- `framing`: NDJSON lines, the 1 MiB frame limit, frame encoding.
- `frames`: frame models, error codes, `IpcError`/`FrameError`, parsing and encoding.
- `registration`: the `register` rules and protocol version negotiation.
"""

__all__: list[str] = []
