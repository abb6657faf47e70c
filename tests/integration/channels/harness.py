"""A gateway with channels configured, and the helpers every channel's tests share.

For a new channel (Matrix, IRC, ...): start the platform's server or stand-in, then
`await channel_gateway(gateway_factory, {"<name>": {...its [channels.<name>] table...}})`.
The table is validated and resolved exactly as config.toml's would be; the echo agent
answers without delay, and restarts and retries are fast so tests do not wait on backoff.
Drive the human side with the platform's own client, read the gateway with an admin
`Peer` (`operator(...)`), and use `approve_pending(...)` for the pairing step.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yarl import URL

from clawgate.channels.outbound import OutboxPolicy
from clawgate.channels.settings import resolve_accounts
from clawgate.channels.supervision import BackoffPolicy
from clawgate.config import AgentSection, ChannelsSection
from clawgate.store.channels_repo import OutboundRow
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.conftest import Peer, PeerFactory

__all__ = [
    "FAST_BACKOFF",
    "FAST_OUTBOX",
    "approve_pending",
    "channel_gateway",
    "channel_status",
    "failure_notes",
    "operator",
    "outbound_rows",
    "raw_post",
    "wait_for",
]

#: Restarts after 50 ms (not 2 s) so a test sees recovery quickly; same shape otherwise.
FAST_BACKOFF = BackoffPolicy(initial_s=0.05, factor=1.5, max_s=0.5, jitter=0.2)
#: Three tries 50 ms apart before a delivery is recorded as failed.
FAST_OUTBOX = OutboxPolicy(max_attempts=3, initial_s=0.05, max_s=0.2)


async def channel_gateway(
    factory: GatewayFactory,
    channels: dict[str, Any],
    *,
    agent: AgentSection | None = None,
    backoff: BackoffPolicy = FAST_BACKOFF,
    outbox: OutboxPolicy = FAST_OUTBOX,
    home: Path | None = None,
    required_for_ready: bool = False,
    **gateway_settings: Any,
) -> RunningGateway:
    """Start a gateway whose `[channels]` holds `channels` (one table per channel).

    `gateway_settings` are further `GatewaySettings` fields (hooks, heartbeat, ...).
    """
    section = ChannelsSection.model_validate({**channels, "required_for_ready": required_for_ready})
    resolved = resolve_accounts(section, home or Path("/nonexistent"), environ={})
    settings = type(resolved)(
        resolved.accounts, resolved.required_for_ready, backoff=backoff, outbox=outbox
    )
    return await factory(
        agent=agent or AgentSection(echo_delay_ms=0), channels=settings, **gateway_settings
    )


async def operator(clients: PeerFactory, gateway: RunningGateway) -> Peer:
    """Connect an operator holding every scope."""
    return await clients(gateway, scopes=["operator.admin"])


async def channel_status(peer: Peer, channel: str, account: str = "default") -> dict[str, Any]:
    """Return one account's `channels.status` entry."""
    result = await peer.client.call("channels.status")
    for entry in result["channels"]:
        if (entry["channel"], entry["accountId"]) == (channel, account):
            return dict(entry)
    raise AssertionError(f"{channel}/{account} is not in channels.status")


async def wait_for(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; return that."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(interval)


async def raw_post(url: str, body: bytes, headers: dict[str, bytes]) -> int:
    """POST `body` with header values sent byte for byte (not UTF-8 text); return the status.

    aiohttp's client encodes header values itself; a platform's request (or a forged one)
    may carry any bytes, which the gateway's server decodes as it can.
    """
    parsed = URL(url)
    assert parsed.host is not None and parsed.port is not None
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    try:
        head = [
            f"POST {parsed.raw_path_qs} HTTP/1.1".encode(),
            f"Host: {parsed.host}:{parsed.port}".encode(),
            b"Content-Type: application/json",
            f"Content-Length: {len(body)}".encode(),
            b"Connection: close",
            *(name.encode() + b": " + value for name, value in headers.items()),
        ]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1])


async def failure_notes(peer: Peer, session_key: str) -> list[str]:
    """Return the notes the layer wrote on a session about deliveries that failed."""
    history = await peer.client.call("chat.history", {"sessionKey": session_key})
    texts = [m["content"][0]["text"] for m in history["messages"] if m["role"] == "system"]
    return [text for text in texts if "failed" in text]


def outbound_rows(gateway: RunningGateway) -> list[OutboundRow]:
    """Read the layer's delivery records straight from state.db, oldest first."""
    with sqlite3.connect(gateway.home / "state.db") as conn:
        rows = conn.execute(
            "SELECT channel, account, chat_id, thread_id, session_key, run_id, state,"
            " message_ids, attempts, error, created_at FROM channel_outbound ORDER BY id"
        ).fetchall()
    return [OutboundRow(*row) for row in rows]


async def approve_pending(peer: Peer, channel: str) -> dict[str, Any]:
    """Approve the one pending pairing code of `channel` over WS; return the listing entry."""
    pending = await wait_for(lambda: _pending(peer, channel))
    entry = pending[0]
    await peer.client.call("channels.pairing.approve", {"channel": channel, "code": entry["code"]})
    return dict(entry)


async def _pending(peer: Peer, channel: str) -> list[dict[str, Any]]:
    result = await peer.client.call("channels.pairing.list")
    return [e for e in result["pending"] if e["channel"] == channel]
