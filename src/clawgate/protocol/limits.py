"""Every limit of the wire protocol, named once, with the spec's defaults (spec §11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "AGENT_MAX_INPUT_CHARS",
    "APPROVAL_HISTORY_COMMAND_MAX_CHARS",
    "APPROVAL_HISTORY_CURSOR_MAX_CHARS",
    "APPROVAL_HISTORY_DEFAULT_LIMIT",
    "APPROVAL_HISTORY_KEEP",
    "APPROVAL_HISTORY_MAX_LIMIT",
    "CANVAS_AUTH_FRAME_MAX_BYTES",
    "CANVAS_MAX_LIVE_SOCKETS",
    "CANVAS_MAX_NAME_BYTES",
    "CANVAS_MAX_URL_PATH_BYTES",
    "CANVAS_SEND_TIMEOUT_MS",
    "CHAT_DELTA_INTERVAL_MS",
    "CONFIG_WRITES_PER_WINDOW",
    "CONFIG_WRITE_WINDOW_MS",
    "CRON_EVERY_MAX_MS",
    "CRON_EVERY_MIN_MS",
    "CRON_RUNS_DEFAULT_LIMIT",
    "CRON_RUNS_MAX_LIMIT",
    "DEVICE_SIGNATURE_SKEW_MS",
    "EXEC_APPROVAL_TTL_MS",
    "HISTORY_DEFAULT_LIMIT",
    "HISTORY_MAX_BYTES",
    "HOOKS_MAX_BODY_BYTES",
    "HOOKS_RATE_PER_MINUTE",
    "HTTP_CONNECTIONS_PER_IP_MAX",
    "HTTP_CONNECTIONS_PER_IP_MIN",
    "HTTP_READ_TIMEOUT_MAX_MS",
    "HTTP_READ_TIMEOUT_MIN_MS",
    "KIB",
    "LIST_LIMIT_MAX",
    "LOGS_TAIL_MAX_BYTES",
    "LOGS_TAIL_MAX_LINES",
    "MAX_NESTING_DEPTH",
    "MAX_QUEUED_SYSTEM_EVENTS",
    "MIB",
    "NODE_INVOKE_DEFAULT_TIMEOUT_MS",
    "NODE_INVOKE_MAX_PENDING",
    "NODE_INVOKE_MAX_TIMEOUT_MS",
    "NODE_ISSUED_IDS_REMEMBERED",
    "OPENAI_MAX_BODY_BYTES",
    "PAIRING_MAX_PENDING",
    "PAIRING_PENDING_TTL_MS",
    "PRESENCE_FANOUT_BYTES_PER_S",
    "PRESENCE_FLUSH_INTERVAL_MS",
    "PROTOCOL_MAX",
    "PROTOCOL_MIN",
    "RUN_TIMEOUT_MAX_S",
    "SESSIONS_LIST_LIMIT_MAX",
    "WAIT_TIMEOUT_DEFAULT_MS",
    "WAIT_TIMEOUT_MAX_MS",
    "Limits",
]

KIB: Final = 1024
MIB: Final = 1024 * KIB

PROTOCOL_MIN: Final = 3
PROTOCOL_MAX: Final = 4

#: `config.set` / `config.patch`: writes per device (or connection) and address per window.
CONFIG_WRITES_PER_WINDOW: Final = 3
CONFIG_WRITE_WINDOW_MS: Final = 60_000
#: Inbound JSON (WS, IPC, hub HTTP, config writes) may nest this deep; deeper is refused.
MAX_NESTING_DEPTH: Final = 64
#: `agent` / `chat.send`: the default of `agent.max_input_chars` (a longer message is refused).
AGENT_MAX_INPUT_CHARS: Final = 128 * KIB
#: System events kept for the next agent turn; the oldest fall off first.
MAX_QUEUED_SYSTEM_EVENTS: Final = 100
#: `chat.history`: the most bytes of messages in one answer, and the default message count.
HISTORY_MAX_BYTES: Final = 6_000_000
HISTORY_DEFAULT_LIMIT: Final = 200
#: `chat.history` and `sessions.list`: the largest `limit` a client may ask for.
LIST_LIMIT_MAX: Final = 1000
# `sessions.list` rows per page: OpenClaw's Control UI asks for 10 000; more is clamped.
SESSIONS_LIST_LIMIT_MAX: Final = 10_000
#: At most one `chat` delta per run per this interval; the newest text waits for it.
CHAT_DELTA_INTERVAL_MS: Final = 150
#: `agent.wait`'s `timeoutMs` (default 30 s) and an agent run's own timeout (48 h).
WAIT_TIMEOUT_MAX_MS: Final = 600_000
WAIT_TIMEOUT_DEFAULT_MS: Final = 30_000
RUN_TIMEOUT_MAX_S: Final = 172_800
#: `logs.tail`: the most lines and bytes one call returns.
LOGS_TAIL_MAX_LINES: Final = 5000
LOGS_TAIL_MAX_BYTES: Final = 1_000_000
#: Pairing requests wait this long, and at most this many at once (the oldest are dropped).
PAIRING_PENDING_TTL_MS: Final = 5 * 60 * 1000
PAIRING_MAX_PENDING: Final = 256
#: HTTP surfaces: the largest request body (413 beyond) of the OpenAI-compatible endpoints
#: and of webhooks, and the webhook requests allowed per credential per minute (429 beyond).
OPENAI_MAX_BODY_BYTES: Final = MIB
HOOKS_MAX_BODY_BYTES: Final = 256 * KIB
HOOKS_RATE_PER_MINUTE: Final = 60
#: `every` cron schedules: the shortest and the longest interval.
CRON_EVERY_MIN_MS: Final = 1000
CRON_EVERY_MAX_MS: Final = 366 * 86_400_000
#: `cron.runs`: the default and the largest `limit` (also the runs kept per job).
CRON_RUNS_DEFAULT_LIMIT: Final = 50
CRON_RUNS_MAX_LIMIT: Final = 500
#: A device signature's `signedAt` may be this far from the gateway's clock.
DEVICE_SIGNATURE_SKEW_MS: Final = 120_000
#: Canvas host: the longest URL path and file name it resolves (longer ones are refused).
CANVAS_MAX_URL_PATH_BYTES: Final = 4096
CANVAS_MAX_NAME_BYTES: Final = 255
#: Canvas live reload: sockets open at once, the size of the one `auth` frame a page
#: sends, and how long one reload notice may take to write before that socket is dropped.
CANVAS_MAX_LIVE_SOCKETS: Final = 256
CANVAS_AUTH_FRAME_MAX_BYTES: Final = 8 * KIB
CANVAS_SEND_TIMEOUT_MS: Final = 2_000
#: `node.invoke`: its `timeoutMs` (default and most), invokes waiting per node, and how many
#: issued invoke ids per node a `node.invoke.result` is checked against.
NODE_INVOKE_DEFAULT_TIMEOUT_MS: Final = 30_000
NODE_INVOKE_MAX_TIMEOUT_MS: Final = 600_000
NODE_INVOKE_MAX_PENDING: Final = 64
NODE_ISSUED_IDS_REMEMBERED: Final = 1024
#: An exec approval request nobody answers is denied after this long.
EXEC_APPROVAL_TTL_MS: Final = 120_000
#: Closed exec approvals kept for `approval.history` (the newest; older ones are dropped),
#: its page size (default and most, OpenClaw's), the longest cursor a client may send, and
#: the longest command line a row keeps (a longer one is cut, ending in "…").
APPROVAL_HISTORY_KEEP: Final = 1000
APPROVAL_HISTORY_DEFAULT_LIMIT: Final = 50
APPROVAL_HISTORY_MAX_LIMIT: Final = 100
APPROVAL_HISTORY_CURSOR_MAX_CHARS: Final = 512
APPROVAL_HISTORY_COMMAND_MAX_CHARS: Final = 4096
#: At most one `presence` event per this interval; changes meanwhile ride on the next one.
PRESENCE_FLUSH_INTERVAL_MS: Final = 100
#: Whole-list `presence` events to many clients are spaced so that they write at most
#: this many bytes per second in all (frame size x recipients): with 150-byte entries,
#: 0.19 s apart for 200 clients, 4.5 s for 1000; below about 150 the 100 ms governs.
PRESENCE_FANOUT_BYTES_PER_S: Final = 32 * MIB

#: `[gateway] http_read_timeout_ms`: the range a request's read deadline may be set in.
HTTP_READ_TIMEOUT_MIN_MS: Final = 1_000
HTTP_READ_TIMEOUT_MAX_MS: Final = 120_000
#: `[gateway] http_max_connections_per_ip`: at least what one browser opens to a host (6)
#: plus the CLI, at most the gateway's whole connection budget.
HTTP_CONNECTIONS_PER_IP_MIN: Final = 8
HTTP_CONNECTIONS_PER_IP_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """Configurable limits; the first three are reported in `hello-ok.policy`."""

    max_payload: int = 25 * MIB
    max_buffered_bytes: int = 50 * MIB
    tick_interval_ms: int = 30_000
    preauth_max_payload: int = 64 * KIB
    handshake_timeout_ms: int = 10_000
    max_unauthenticated_per_ip: int = 32
    max_connections: int = 4096
    max_requests_in_progress: int = 256
    auth_failures_allowed: int = 10
    auth_failure_window_ms: int = 60_000
    auth_lockout_ms: int = 60_000
    auth_failure_delay_ms: int = 250
    # HTTP slow clients: a request, headers and body, must arrive within this (else the
    # connection is closed), and one address may hold at most this many open HTTP connections.
    http_read_timeout_ms: int = 10_000
    http_max_connections_per_ip: int = 64
    device_signature_skew_ms: int = DEVICE_SIGNATURE_SKEW_MS
    dedupe_ttl_ms: int = 300_000
    dedupe_max_entries: int = 1000
    refusals_in_a_row: int = 10
    invalid_frames_in_a_row: int = 10
    health_refresh_ms: int = 60_000
    presence_expiry_ms: int = 300_000
    shutdown_drain_ms: int = 2_000
    logs_tail_max_lines: int = LOGS_TAIL_MAX_LINES
    logs_tail_max_bytes: int = LOGS_TAIL_MAX_BYTES

    def __post_init__(self) -> None:
        """Reject settings outside the ranges the spec allows."""
        if not 1_000 <= self.handshake_timeout_ms <= 120_000:
            raise ValueError("handshake timeout must be between 1000 and 120000 ms")
        if self.tick_interval_ms < 1:
            raise ValueError("tick interval must be positive")
        if self.max_payload < self.preauth_max_payload:
            raise ValueError("max payload must be at least the pre-auth limit")
        if not HTTP_READ_TIMEOUT_MIN_MS <= self.http_read_timeout_ms <= HTTP_READ_TIMEOUT_MAX_MS:
            raise ValueError(
                f"HTTP read timeout must be between {HTTP_READ_TIMEOUT_MIN_MS}"
                f" and {HTTP_READ_TIMEOUT_MAX_MS} ms"
            )
        if self.http_max_connections_per_ip < 1:
            raise ValueError("HTTP connections per address must be at least 1")
