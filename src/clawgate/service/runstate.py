"""Where a running gateway (or hub) really listens, and how a local client finds it safely.

The process writes a **state file** once it is serving and removes it when it stops:
`<home>/gateway.run.json` for the gateway, `hub.run.json` beside `hub.toml` for the hub.
The file is JSON, mode 0600, written atomically:

    {"kind": "gateway", "pid": 4242, "bootId": "<uuid>", "url": "ws://127.0.0.1:18789/",
     "httpUrl": "http://127.0.0.1:18789", "port": 18789, "tlsFingerprint": null,
     "startedMs": 1700000000000, "identityKey": "<64 hex>", "detached": true}

`url` is the address a client dials (the actual port, after `--port 0` too), `httpUrl`
the same server over HTTP; `detached` says `gateway start` spawned it (a foreground
`gateway run` or a service manager's writes false, and `gateway restart` leaves it alone);
`bootId` is the UUID the process also shows in `/readyz` (and the gateway in
`hello-ok.server.bootId`). `identityKey` never leaves the file and the process:
with it the process proves it is the one the file names (below).

A client that was given no `--url` calls `find_running(path)`:

1. the file must exist and parse, else `NotRunning` ("no gateway running in …");
2. its `pid` must be alive;
3. `GET <httpUrl>/readyz` with a fresh nonce in `X-Clawgate-Challenge` must answer
   `X-Clawgate-Proof` = HMAC(identityKey, nonce) (`protocol/run_identity.py`); the key is
   drawn at each start, so this proves the very start the file describes.

Only then is the `RunState` returned and may a credential be sent to `url`. A stale file
(`kill -9`), a recycled pid, or another program on the recorded port fail step 2 or 3, and
the caller says so in one line instead of handing the token to whatever listens there.

`gateway start` (issue 18) waits for a start with `verify_run_state`: it succeeds only once
the file names the very pid it spawned and that process proves it (another gateway already
on the port cannot make a failed start look good).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from ..files import write_atomic
from ..protocol.run_identity import IDENTITY_CHALLENGE_HEADER, IDENTITY_PROOF_HEADER, proof_matches

__all__ = [
    "GATEWAY_STATE_NAME",
    "HUB_STATE_NAME",
    "NotRunning",
    "RunState",
    "clear_run_state",
    "find_running",
    "read_run_state",
    "verify_run_state",
    "write_run_state",
]

GATEWAY_STATE_NAME: Final = "gateway.run.json"
HUB_STATE_NAME: Final = "hub.run.json"
#: How long the identity probe may take; a loaded machine gets generous time.
DEFAULT_PROBE_TIMEOUT_S: Final = 5.0

#: Fetch `url` with `headers`; return (status, headers, body) or raise OSError.
Probe = Callable[[str, dict[str, str], float], tuple[int, dict[str, str], bytes]]


class NotRunning(Exception):
    """No process this client may trust is serving; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RunState:
    """What a serving process wrote about itself."""

    kind: str  # "gateway" or "hub"
    pid: int
    boot_id: str
    url: str
    http_url: str
    port: int
    started_ms: int
    identity_key: str = field(repr=False)
    tls_fingerprint: str | None = None
    #: True when `gateway start` spawned it; `gateway restart` replaces only such a process.
    detached: bool = False

    @classmethod
    def new(
        cls,
        kind: str,
        *,
        url: str,
        port: int,
        boot_id: str,
        started_ms: int,
        identity_key: str | None = None,
        tls_fingerprint: str | None = None,
        detached: bool = False,
    ) -> RunState:
        """Describe this process serving at `url` (a ws(s):// or http(s):// base URL)."""
        http = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1).rstrip("/")
        return cls(
            kind=kind,
            pid=os.getpid(),
            boot_id=boot_id,
            url=url,
            http_url=http,
            port=port,
            started_ms=started_ms,
            identity_key=identity_key or secrets.token_hex(32),
            tls_fingerprint=tls_fingerprint,
            detached=detached,
        )

    def to_json(self) -> bytes:
        """Return the file's content (camelCase keys, like the wire)."""
        return orjson.dumps(
            {_camel(name): value for name, value in asdict(self).items()},
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, content: bytes) -> RunState | None:
        """Parse a file's content; None when it is not a state file of ours."""
        try:
            data: Any = orjson.loads(content)
            if not isinstance(data, dict):
                return None
            state = cls(**{name: data[_camel(name)] for name in _FIELDS if _camel(name) in data})
        except (orjson.JSONDecodeError, TypeError):
            return None
        valid = isinstance(state.pid, int) and all(
            isinstance(value, str) for value in (state.boot_id, state.http_url, state.identity_key)
        )
        return state if valid else None


_FIELDS: Final = tuple(RunState.__dataclass_fields__)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def write_run_state(path: Path, state: RunState) -> None:
    """Write `state` to `path` atomically, mode 0600."""
    write_atomic(path, state.to_json())


def read_run_state(path: Path) -> RunState | None:
    """Return the state in `path`, or None when it is missing or not one of ours."""
    try:
        return RunState.from_json(path.read_bytes())
    except OSError:
        return None


def clear_run_state(path: Path, boot_id: str) -> None:
    """Remove `path` if it still describes the process with `boot_id`."""
    state = read_run_state(path)
    if state is not None and state.boot_id == boot_id:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's: the proof below decides
    return True


def _http_probe(
    url: str, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    context = None
    if url.startswith("https:"):
        # The proof, not the certificate, says who answers here; only a nonce is sent, and
        # the client pins the certificate when it connects with credentials.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, dict(response.headers), response.read(4096)
    except urllib.error.HTTPError as exc:  # 503 while starting or stopping: still an answer
        return exc.code, dict(exc.headers), exc.read(4096)


def verify_run_state(
    state: RunState, *, timeout: float = DEFAULT_PROBE_TIMEOUT_S, probe: Probe = _http_probe
) -> str | None:
    """Return None when the process at `state.http_url` proves it wrote `state`, else why not."""
    if not _pid_alive(state.pid):
        return f"pid {state.pid} has exited"
    challenge = secrets.token_hex(32)
    try:
        _, headers, _ = probe(
            state.http_url + "/readyz", {IDENTITY_CHALLENGE_HEADER: challenge}, timeout
        )
    except (OSError, ValueError) as exc:
        return f"nothing answers at {state.http_url} ({exc})"
    proof = {name.lower(): value for name, value in headers.items()}.get(
        IDENTITY_PROOF_HEADER.lower()
    )
    # The key is drawn anew at every start: a match is this very start, not an earlier one.
    if not proof_matches(state.identity_key, challenge, proof):
        return f"the server at {state.http_url} is not the {state.kind} that wrote the state file"
    return None


def find_running(
    path: Path,
    *,
    kind: str = "gateway",
    where: str = "CLAWGATE_HOME",
    timeout: float = DEFAULT_PROBE_TIMEOUT_S,
    probe: Probe = _http_probe,
) -> RunState:
    """Return the verified state of the process `path` names; nothing is sent to it before.

    Raises:
        NotRunning: no file, a dead pid, or a server that cannot prove it is that process.
    """
    advice = f"no {kind} running in {where} ({path.parent}); start it or pass --url"
    state = read_run_state(path)
    if state is None:
        raise NotRunning(advice)
    reason = verify_run_state(state, timeout=timeout, probe=probe)
    if reason is not None:
        raise NotRunning(f"{advice} ({reason}; nothing was sent)")
    return state
