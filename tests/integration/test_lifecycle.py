"""The server's background loops have owners and stop; a restart reuses the port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from clawgate.automation.heartbeat_rules import HeartbeatSettings
from clawgate.gateway.server import GatewayServer
from clawgate.gateway.settings import GatewaySettings
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.limits import Limits


def settings(home: Path, port: int = 0) -> GatewaySettings:
    return GatewaySettings(
        home=home,
        auth=SharedSecretAuth(AuthMode.TOKEN, "lifecycle-token"),
        port=port,
        limits=Limits(tick_interval_ms=50, health_refresh_ms=50),
        heartbeat=HeartbeatSettings(every_s=1),
    )


async def test_stop_ends_every_background_task(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    server = GatewayServer(settings(tmp_path))
    await server.start()
    await asyncio.sleep(0.2)  # let tick and health loops run a few times
    assert server.health.version > 1
    await server.stop()
    leftover = {task for task in asyncio.all_tasks() - before if not task.done()}
    leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
    assert leftover == set()
    assert server.ready is False


async def test_stop_is_idempotent_and_refuses_new_clients(tmp_path: Path) -> None:
    server = GatewayServer(settings(tmp_path))
    await server.start()
    url = server.url
    await server.stop()
    await server.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.ws_connect(url)


async def test_restart_on_the_same_port(tmp_path: Path) -> None:
    first = GatewayServer(settings(tmp_path))
    await first.start()
    port = first.port
    await first.stop(restarting=True, restart_expected_ms=500)
    second = GatewayServer(settings(tmp_path, port))
    await second.start()
    try:
        assert second.port == port and second.boot_id != first.boot_id
    finally:
        await second.stop()


async def test_failed_bind_leaves_nothing_running(tmp_path: Path) -> None:
    holder = GatewayServer(settings(tmp_path))
    await holder.start()
    try:
        clash = GatewayServer(settings(tmp_path, holder.port))
        with pytest.raises(OSError):
            await clash.start()
        await clash.stop()
        assert clash.ready is False
    finally:
        await holder.stop()


async def test_a_dying_background_loop_stops_the_others_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = GatewayServer(settings(tmp_path))
    await server.start()
    try:
        loops = list(server._loops)

        async def broken_loop() -> None:
            raise RuntimeError("a loop broke")

        assert server._group is not None
        server._group.create_task(broken_loop())
        async with asyncio.timeout(5):
            await server.wait_failed()
        assert all(loop.done() for loop in loops)
        assert any("background loop failed" in r.getMessage() for r in caplog.records)
    finally:
        await server.stop()


async def test_a_failed_start_leaves_no_task_behind(tmp_path: Path) -> None:
    holder = GatewayServer(settings(tmp_path / "a"))
    await holder.start()
    before = asyncio.all_tasks()
    second = GatewayServer(settings(tmp_path / "b", holder.port))
    try:
        with pytest.raises(OSError):
            await second.start()
        leftover = {task for task in asyncio.all_tasks() - before if not task.done()}
        leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
        assert leftover == set()
    finally:
        await holder.stop()


async def test_giving_up_waiting_for_a_failure_leaves_the_loops_running(tmp_path: Path) -> None:
    server = GatewayServer(settings(tmp_path))
    await server.start()
    try:
        waiter = asyncio.create_task(server.wait_failed())
        await asyncio.sleep(0.05)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert not any(loop.done() for loop in server._loops)
        assert server._supervisor is not None and not server._supervisor.done()
    finally:
        await server.stop()
