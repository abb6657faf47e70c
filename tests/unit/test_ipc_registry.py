"""Plugin registry: routing, replacement order and timeouts (spec §2.8 to §2.10)."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.ipc.registry import DEFAULT_TIMEOUTS_S, PluginRegistry, PluginSession, timeout_for
from clawgate.protocol.ipc.frames import PLUGIN_DISCONNECTED, IpcError


class _Link:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def request(
        self, method: str, params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        self.calls.append((method, params, timeout_s))
        return {"ok": 1}

    def send_event(self, name: str, payload: dict[str, Any]) -> None:
        self.events.append((name, payload))


def _session(name: str, *caps: str, link: _Link | None = None) -> PluginSession:
    return PluginSession(
        name=name,
        version="1",
        capabilities=caps,
        protocol_version=1,
        connection_id=f"conn-{name}",
        connected_at=0.0,
        link=link or _Link(),
    )


def test_for_capability_picks_most_recent_live_plugin() -> None:
    registry = PluginRegistry()
    first, second = _session("a", "mail"), _session("b", "mail")
    registry.add(first)
    registry.add(second)
    assert registry.for_capability("mail") is second
    registry.remove(second)
    assert registry.for_capability("mail") is first
    assert registry.for_capability("other") is None


def test_same_name_add_returns_previous_and_remove_keeps_new() -> None:
    seen: list[str] = []
    registry = PluginRegistry(on_disconnect=lambda s: seen.append(s.connection_id))
    old, new = _session("a"), _session("a")
    new.connection_id = "new"
    registry.add(old)
    assert registry.add(new) is old
    registry.remove(old)
    assert registry.by_name("a") is new
    assert seen == ["conn-a"]
    assert registry.sessions() == [new]


def test_remove_is_idempotent() -> None:
    seen: list[PluginSession] = []
    registry = PluginRegistry(on_disconnect=seen.append)
    session = _session("a")
    registry.add(session)
    registry.remove(session)
    registry.remove(session)
    assert seen == [session]


def test_failing_callback_is_contained() -> None:
    def boom(session: PluginSession) -> None:
        raise RuntimeError("x")

    registry = PluginRegistry(on_register=boom)
    registry.announce(_session("a"))


async def test_session_request_uses_default_timeout_table() -> None:
    link = _Link()
    session = _session("a", link=link)
    await session.request("integration.install", {"x": 1})
    await session.request("custom.thing")
    await session.request("ping", timeout_s=1.5)
    assert [c[2] for c in link.calls] == [300.0, 30.0, 1.5]


async def test_request_on_dead_session_fails_disconnected() -> None:
    session = _session("a")
    session.live = False
    with pytest.raises(IpcError) as caught:
        await session.request("ping")
    assert caught.value.code == PLUGIN_DISCONNECTED and caught.value.retryable


def test_timeout_for_honours_overrides_but_not_for_command_execute() -> None:
    assert timeout_for("integration.list") == DEFAULT_TIMEOUTS_S["integration.list"]
    assert timeout_for("integration.list", {"integration.list": 5}) == 5
    assert timeout_for("command.execute", {"command.execute": 5}, 30) == 30
