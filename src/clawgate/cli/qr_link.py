"""`clawgate channels login whatsapp`: link the gateway as a device by scanning a QR code.

The gateway holds the session (and its lock); this command only shows what the gateway
offers: `web.login.start` for the first code, `web.login.wait` for each new one (they rotate
about every 20 s) until the phone scans one or `LINK_TIMEOUT_S` passes.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..client import GatewayClient

__all__ = ["link_by_qr", "links_by_qr"]

#: Channels and the mode in which an account is linked by QR code rather than a token.
QR_MODES: Final = {"whatsapp": "web"}
LINK_TIMEOUT_S: Final = 180.0
_WAIT_MS: Final = 25_000


def draw(code: str) -> None:
    """Draw `code` as a QR code in the terminal (or print it when segno is missing)."""
    try:
        import segno
    except ImportError:
        print(f"QR code (draw it with any QR tool): {code}")
        print("install the channel's extra to see it here: pip install 'clawgate[whatsapp-web]'")
        return
    segno.make_qr(code, error="l").terminal(out=sys.stdout, compact=True)


async def links_by_qr(client: GatewayClient, channel: str, account: str | None) -> bool:
    """Return whether the gateway's account is one linked by scanning a QR code."""
    if channel not in QR_MODES:
        return False
    status = await client.call("channels.status", {"channel": channel})
    wanted = account or "default"
    entry = next((e for e in status["channels"] if e["accountId"] == wanted), None)
    return entry is not None and entry.get("mode") == QR_MODES[channel]


async def link_by_qr(client: GatewayClient, channel: str, account: str | None) -> bool:
    """Show each QR code the gateway offers until one is scanned; return whether linked."""
    params: dict[str, Any] = {"channel": channel, "accountId": account}
    answer = await client.call("web.login.start", params, timeout=_WAIT_MS / 1000 + 10)
    deadline = time.monotonic() + LINK_TIMEOUT_S
    while not answer["connected"]:
        if answer.get("qr"):
            draw(answer["qr"])
            print(answer["message"], flush=True)
        if time.monotonic() > deadline:
            return False
        answer = await client.call(
            "web.login.wait",
            {**params, "currentQrDataUrl": answer.get("qrDataUrl"), "timeoutMs": _WAIT_MS},
            timeout=_WAIT_MS / 1000 + 10,
        )
    return True
