"""Plugin IPC protocol version 1, without I/O (control-plane spec §2).

One wire, used by both ends: the daemon's IPC server (`clawgate.ipc`) and the plugin SDK
(`clawgate.plugin`) frame, parse and validate with these modules, so neither end can be
laxer than the other.

- `framing`: NDJSON lines, the 1 MiB frame limit, frame encoding.
- `frames`: frame models, error codes, `IpcError`/`FrameError`, parsing and encoding.
- `reader`: `FrameReader`, inbound bytes in, frames (or the one fatal `FrameError`) out.
- `registration`: the `register` rules and protocol version negotiation.
- `timeouts`: the §2.8 request timeout table, applied by whichever end asks.
"""

__all__: list[str] = []
