"""Who holds a TCP port, when the system lets us know."""

from __future__ import annotations

__all__ = ["port_holder"]


def port_holder(port: int) -> str | None:
    """Describe the process listening on `port` (e.g. `pid 42 (nginx)`), if it can be seen."""
    import psutil  # only needed when a bind failed; the running gateway never loads it

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for connection in connections:
        if connection.status != psutil.CONN_LISTEN or not connection.laddr:
            continue
        if connection.laddr.port != port:
            continue
        if connection.pid is None:
            return "a process of another user"
        try:
            name = psutil.Process(connection.pid).name()
        except psutil.Error:
            return f"pid {connection.pid}"
        return f"pid {connection.pid} ({name})"
    return None
