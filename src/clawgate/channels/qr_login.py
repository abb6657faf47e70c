"""Linking a device by QR code: the codes a platform offers, and whether one was scanned.

WhatsApp Web (and platforms like it) link a new device by showing a QR code that rotates
every ~20 seconds until a phone scans it. The adapter offers each code here; the gateway's
`web.login.start` hands the current one to whoever asks (the CLI draws it in the terminal,
the WebChat page as an image) and `web.login.wait` waits for the scan.
"""

from __future__ import annotations

import asyncio

__all__ = ["QrLogin"]


class QrLogin:
    """The latest QR code of one account, and whether the device is linked."""

    def __init__(self) -> None:
        self.code: str | None = None
        self.linked = False
        self._changed = asyncio.Condition()

    async def offer(self, code: str) -> None:
        """A new code to scan (the previous one no longer works)."""
        async with self._changed:
            self.code, self.linked = code, False
            self._changed.notify_all()

    async def link(self) -> None:
        """The device is linked (a code was scanned, or a saved session connected)."""
        async with self._changed:
            self.code, self.linked = None, True
            self._changed.notify_all()

    async def current(self, timeout_s: float, *, after: str | None = None) -> str | None:
        """Return a code other than `after` once there is one, or None if linked or timed out."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self.linked or (self.code is not None and self.code != after)
                    ),
                    timeout_s,
                )
            except TimeoutError:
                return None
            return None if self.linked else self.code

    async def wait_linked(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the device to be linked; return whether it is."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.linked), timeout_s)
            except TimeoutError:
                return False
            return True
