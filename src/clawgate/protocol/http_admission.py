"""Open HTTP connections per address: the cap a slow or greedy client meets (issue 17)."""

from __future__ import annotations

__all__ = ["ConnectionCap"]


class ConnectionCap:
    """Count open connections per address and admit at most `per_ip` of them at once."""

    def __init__(self, per_ip: int) -> None:
        self._per_ip = per_ip
        self._open: dict[str, int] = {}

    def admit(self, ip: str) -> bool:
        """Count a new connection from `ip`; False (and not counted) when it is at the cap."""
        held = self._open.get(ip, 0)
        if held >= self._per_ip:
            return False
        self._open[ip] = held + 1
        return True

    def release(self, ip: str) -> None:
        """Forget one admitted connection from `ip`."""
        held = self._open.get(ip, 0) - 1
        if held > 0:
            self._open[ip] = held
        else:
            self._open.pop(ip, None)

    def open_count(self, ip: str) -> int:
        """Return how many connections `ip` holds now."""
        return self._open.get(ip, 0)
