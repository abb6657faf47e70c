"""The plugin SDK against the daemon's real IpcServer over a Unix socket, and the example plugin."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from examples.dir_integrations import DirIntegrations, build_plugin

from clawgate.ipc import IpcError, IpcServer, PluginSession
from clawgate.plugin import Plugin, PluginError, PluginState

WAIT = 5.0
MANIFEST = {
    "id": "github",
    "version": "1.4.0",
    "name": "GitHub",
    "config_schema": {
        "type": "object",
        "properties": {"org": {"type": "string"}, "token": {"type": "string", "x-secret": True}},
    },
    "commands": [{"name": "dir.touch"}],
}


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # AF_UNIX paths are limited to about 104 bytes; pytest's tmp_path is often longer.
    d = Path(tempfile.mkdtemp(dir="/tmp", prefix="cgp-"))
    yield d / "gateway.sock"
    shutil.rmtree(d, ignore_errors=True)


async def _status(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
    return {"daemonId": "daemon-1", "plugin": session.name}


async def _slow(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(10)
    return {}


def make_server(path: Path, registered: list[PluginSession]) -> IpcServer:
    """Return a daemon IPC server that sends cloud.status on register, like the daemon."""
    server = IpcServer(
        path,
        daemon_id="daemon-1",
        daemon_version="0.1.0",
        handlers={"status": _status, "slow": _slow},
    )

    def on_register(session: PluginSession) -> None:
        registered.append(session)
        session.send_event("cloud.status", {"connected": False, "state": "disconnected"})

    server.registry.on_register = on_register
    return server


@pytest.fixture
async def daemon(sock_path: Path) -> AsyncIterator[tuple[IpcServer, list[PluginSession]]]:
    registered: list[PluginSession] = []
    server = make_server(sock_path, registered)
    await server.start()
    yield server, registered
    await server.stop(grace_ms=100)


def fast_plugin(**kwargs: Any) -> Plugin:
    """Return a plugin with short, deterministic reconnect delays."""
    return Plugin(
        "test-plugin",
        version="1.0.0",
        capabilities=["integrations", "mail.send"],
        backoff_initial=0.05,
        backoff_max=0.1,
        rand=lambda lo, hi: hi,
        **kwargs,
    )


async def wait_for(predicate: Any) -> None:
    """Poll until ``predicate()`` is true."""
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


def state_of(plugin: Plugin) -> PluginState:
    """Return the plugin's state (a call, so type checkers do not narrow it)."""
    return plugin.state


async def start(plugin: Plugin, path: Path) -> asyncio.Task[None]:
    """Run the plugin in a task and wait for registration."""
    task = asyncio.create_task(plugin.run(path))
    await plugin.wait_registered(WAIT)
    return task


async def test_registers_with_capabilities(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    server, _ = daemon
    plugin = fast_plugin()
    task = await start(plugin, sock_path)
    assert plugin.state is PluginState.REGISTERED
    assert plugin.registration is not None
    assert plugin.registration["daemonId"] == "daemon-1"
    assert plugin.registration["protocolVersion"] == 1
    session = server.registry.by_name("test-plugin")
    assert session is not None
    assert session.capabilities == ("integrations", "mail.send")
    await plugin.stop()
    await task


async def test_receives_cloud_status_after_register(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    plugin = fast_plugin()
    got: list[dict[str, Any]] = []

    @plugin.on_event("cloud.status")
    async def cloud(payload: dict[str, Any]) -> None:
        got.append(payload)

    task = await start(plugin, sock_path)
    await wait_for(lambda: got)
    assert got[0]["state"] == "disconnected"
    await plugin.stop()
    await task


async def test_daemon_request_reaches_handler(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    server, _ = daemon
    plugin = fast_plugin()

    @plugin.handler("command.execute")
    async def execute(params: dict[str, Any]) -> dict[str, Any]:
        return {"result": {"echo": params["params"]}}

    task = await start(plugin, sock_path)
    session = server.registry.by_name("test-plugin")
    assert session is not None
    payload = await session.request("command.execute", {"commandId": "c1", "params": {"a": 1}})
    assert payload == {"result": {"echo": {"a": 1}}}
    await plugin.stop()
    await task


async def test_daemon_gets_method_not_found_and_plugin_errors(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    server, _ = daemon
    plugin = fast_plugin()

    @plugin.handler("integration.install")
    async def install(params: dict[str, Any]) -> dict[str, Any]:
        raise PluginError("SECRETS_UNAVAILABLE", "need token")

    @plugin.handler("integration.remove")
    async def remove(params: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("secret-key-name")

    task = await start(plugin, sock_path)
    session = server.registry.by_name("test-plugin")
    assert session is not None
    with pytest.raises(IpcError) as info:
        await session.request("integration.nope", {})
    assert info.value.code == "METHOD_NOT_FOUND"
    with pytest.raises(IpcError) as info:
        await session.request("integration.install", {})
    assert (info.value.code, info.value.retryable) == ("SECRETS_UNAVAILABLE", True)
    with pytest.raises(IpcError) as info:
        await session.request("integration.remove", {})
    assert info.value.code == "INTERNAL"
    assert "secret-key-name" not in info.value.message
    await plugin.stop()
    await task


async def test_daemon_ping_is_answered(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    server, _ = daemon
    plugin = fast_plugin()
    task = await start(plugin, sock_path)
    session = server.registry.by_name("test-plugin")
    assert session is not None
    payload = await session.request("ping", {})
    assert payload["now"].endswith("Z")
    await plugin.stop()
    await task


async def test_plugin_calls_daemon_methods(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    plugin = fast_plugin()
    task = await start(plugin, sock_path)
    assert (await plugin.call("status")) == {"daemonId": "daemon-1", "plugin": "test-plugin"}
    assert "now" in await plugin.call("ping")
    with pytest.raises(PluginError) as info:
        await plugin.call("integration.report", {"integrationId": "x", "status": "active"})
    assert info.value.code == "METHOD_NOT_FOUND"  # this test server has no report handler
    await plugin.stop()
    await task


async def test_call_times_out_and_stays_usable(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    plugin = fast_plugin()
    task = await start(plugin, sock_path)
    with pytest.raises(PluginError) as info:
        await plugin.call("slow", timeout=0.2)
    assert (info.value.code, info.value.retryable) == ("TIMEOUT", True)
    assert "now" in await plugin.call("ping")
    await plugin.stop()
    await task


async def test_concurrent_requests_both_ways(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    server, _ = daemon
    plugin = fast_plugin()

    @plugin.handler("echo")
    async def echo(params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01 * (params["i"] % 3))
        return {"i": params["i"], "blob": "x" * 50_000}

    task = await start(plugin, sock_path)
    session = server.registry.by_name("test-plugin")
    assert session is not None
    results = await asyncio.gather(
        *(session.request("echo", {"i": i}) for i in range(40)),
        *(plugin.call("status") for _ in range(20)),
    )
    assert [r["i"] for r in results[:40]] == list(range(40))
    await plugin.stop()
    await task


async def test_reconnects_after_daemon_restart(sock_path: Path) -> None:
    registered: list[PluginSession] = []
    server = make_server(sock_path, registered)
    await server.start()
    plugin = fast_plugin()
    shutdowns: list[dict[str, Any]] = []

    @plugin.on_event("daemon.shutdown")
    async def on_shutdown(payload: dict[str, Any]) -> None:
        shutdowns.append(payload)

    task = await start(plugin, sock_path)
    await server.stop(reason="restart", grace_ms=100)
    await wait_for(lambda: plugin.state is not PluginState.REGISTERED)
    assert shutdowns and shutdowns[0]["reason"] == "restart"
    # The daemon is down for a while: the plugin keeps trying.
    await asyncio.sleep(0.3)
    server = make_server(sock_path, registered)
    await server.start()
    try:
        await wait_for(lambda: len(registered) == 2)
        await plugin.wait_registered(WAIT)
        assert "now" in await plugin.call("ping")
    finally:
        await plugin.stop()
        await task
        await server.stop(grace_ms=100)


async def test_stop_leaves_no_tasks_behind(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path
) -> None:
    server, _ = daemon
    plugin = fast_plugin()
    started = asyncio.Event()

    @plugin.handler("hang")
    async def hang(params: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(60)
        return {}

    before = asyncio.all_tasks()
    task = await start(plugin, sock_path)
    session = server.registry.by_name("test-plugin")
    assert session is not None
    pending = asyncio.create_task(session.request("hang", {}))
    await started.wait()
    await plugin.stop()
    await task
    assert plugin.state is PluginState.STOPPED
    with pytest.raises(IpcError) as info:
        await pending
    assert info.value.code == "PLUGIN_DISCONNECTED"
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    # The daemon's own connection tasks may still be winding down; only ours must be gone.
    ours = [t for t in leftover if "clawgate/plugin/" in str(getattr(t.get_coro(), "cr_code", ""))]
    assert ours == []
    await wait_for(lambda: server.registry.by_name("test-plugin") is None)


async def test_stop_while_daemon_is_absent(sock_path: Path) -> None:
    plugin = fast_plugin()
    task = asyncio.create_task(plugin.run(sock_path))
    await asyncio.sleep(0.2)
    assert plugin.state in (PluginState.BACKOFF, PluginState.CONNECTING)
    await plugin.stop()
    await task
    assert state_of(plugin) is PluginState.STOPPED


async def test_unsupported_protocol_is_fatal(sock_path: Path) -> None:
    async def fake_daemon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import orjson

        req = orjson.loads(await reader.readline())
        err = {"code": "UNSUPPORTED_PROTOCOL", "message": "no", "details": {}}
        writer.write(orjson.dumps({"type": "res", "id": req["id"], "ok": False, "error": err}))
        writer.write(b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(fake_daemon, path=str(sock_path))
    try:
        with pytest.raises(PluginError) as info:
            await asyncio.wait_for(fast_plugin().run(sock_path), WAIT)
        assert info.value.code == "UNSUPPORTED_PROTOCOL"
    finally:
        server.close()
        await server.wait_closed()


async def test_oversized_frame_from_daemon_gets_error_and_reconnect(sock_path: Path) -> None:
    import orjson

    received: list[Any] = []
    connections = 0

    async def fake_daemon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        req = orjson.loads(await reader.readline())
        res = {"type": "res", "id": req["id"], "ok": True, "payload": {"connectionId": "c"}}
        writer.write(orjson.dumps(res) + b"\n")
        if connections == 1:
            writer.write(b"x" * (1_048_577) + b"\n")
            await writer.drain()
            line = await reader.readline()
            received.append(orjson.loads(line))
            writer.close()
        else:
            await writer.drain()
            await reader.read()

    server = await asyncio.start_unix_server(fake_daemon, path=str(sock_path), limit=4 * 1_048_576)
    plugin = fast_plugin()
    task = asyncio.create_task(plugin.run(sock_path))
    try:
        await wait_for(lambda: connections == 2 and plugin.state is PluginState.REGISTERED)
        assert received[0]["id"] is None
        assert received[0]["error"]["code"] == "FRAME_TOO_LARGE"
    finally:
        await plugin.stop()
        await task
        server.close()
        await server.wait_closed()


# -- The example plugin ---------------------------------------------------------------


def all_file_text(root: Path) -> str:
    """Return the text of every file under ``root``."""
    return "".join(p.read_text() for p in root.rglob("*") if p.is_file())


def install_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "integrationId": "github",
        "version": "1.4.0",
        "manifest": MANIFEST,
        "config": {"org": "acme", "token": "should-not-be-written"},
        "secrets": {"token": "ghp-very-secret"},
        "configHash": "sha256:abc",
        "revision": 3,
    }
    params.update(overrides)
    return params


async def test_example_install_writes_files_but_no_secret(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    assert await store.install(install_params()) == {"status": "installed", "version": "1.4.0"}
    d = tmp_path / "github"
    assert {p.name for p in d.iterdir()} == {"manifest.json", "config.json", "state.json"}
    written = all_file_text(tmp_path)
    assert "ghp-very-secret" not in written and "should-not-be-written" not in written
    assert store.secrets_for("github") == {"token": "ghp-very-secret"}
    listing = await store.list_integrations({})
    assert listing == {
        "integrations": [
            {
                "id": "github",
                "version": "1.4.0",
                "status": "installed",
                "configHash": "sha256:abc",
                "secretsLoaded": True,
            }
        ]
    }


async def test_example_install_is_idempotent(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    await store.install(install_params())
    await store.activate({"integrationId": "github"})
    await store.install(install_params())
    assert (await store.list_integrations({}))["integrations"][0]["status"] == "active"


async def test_example_rejects_invalid_manifest_and_bad_ids(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    with pytest.raises(PluginError) as info:
        await store.install(install_params(manifest={"id": "github"}))
    assert info.value.code == "INVALID_MANIFEST"
    assert info.value.details is not None and info.value.details["errors"]
    with pytest.raises(PluginError) as info:
        await store.install(install_params(integrationId="../etc"))
    assert info.value.code == "INVALID_PARAMS"


async def test_example_secrets_are_not_loaded_after_restart(tmp_path: Path) -> None:
    await DirIntegrations(tmp_path).install(install_params())
    restarted = DirIntegrations(tmp_path)
    entry = (await restarted.list_integrations({}))["integrations"][0]
    assert entry["secretsLoaded"] is False
    await restarted.configure(
        {
            "integrationId": "github",
            "config": {"org": "b"},
            "secrets": {"token": "t2"},
            "configHash": "sha256:def",
        }
    )
    entry = (await restarted.list_integrations({}))["integrations"][0]
    assert (entry["secretsLoaded"], entry["configHash"]) == (True, "sha256:def")


async def test_example_configure_rewrites_config(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    await store.install(install_params())
    params = {"integrationId": "github", "config": {"org": "new"}, "configHash": "sha256:2"}
    assert await store.configure(params) == {"status": "configured"}
    assert '"org":"new"' in (tmp_path / "github" / "config.json").read_text()
    with pytest.raises(PluginError) as info:
        await store.configure({**params, "integrationId": "absent"})
    assert info.value.code == "NOT_FOUND"


async def test_example_activate_deactivate_remove(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    await store.install(install_params())
    ident = {"integrationId": "github"}
    for _ in range(2):
        assert await store.activate(ident) == {"status": "active"}
    assert (tmp_path / "github" / "ACTIVE").exists()
    for _ in range(2):
        assert await store.deactivate(ident) == {"status": "inactive"}
    assert not (tmp_path / "github" / "ACTIVE").exists()
    assert (await store.list_integrations({}))["integrations"][0]["status"] == "inactive"
    for _ in range(2):
        assert await store.remove(ident) == {"status": "removed"}
    assert not (tmp_path / "github").exists()
    assert store.secrets_for("github") == {}
    assert await store.list_integrations({}) == {"integrations": []}


async def test_example_health(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    await store.install(install_params())
    assert await store.health({}) == {"integrations": [{"id": "github", "healthy": True}]}
    (tmp_path / "github" / "config.json").write_text('{"org":"tampered"}')
    [entry] = (await store.health({"integrationIds": ["github"]}))["integrations"]
    assert entry["healthy"] is False
    [entry] = (await store.health({"integrationIds": ["absent"]}))["integrations"]
    assert entry == {"id": "absent", "healthy": False, "detail": "missing manifest.json"}


async def test_example_command_runs_once_per_command_id(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    params = {"commandId": "c-1", "name": "dir.touch", "params": {"name": "a.txt", "content": "1"}}
    first = await store.execute(params)
    assert first["result"]["bytes"] == 1
    touched = tmp_path / "touched" / "a.txt"
    touched.unlink()
    # A redelivery (attempt 2) after a restart must not run again, but answers the same.
    again = await DirIntegrations(tmp_path).execute({**params, "attempt": 2})
    assert again == first
    assert not touched.exists()


async def test_example_command_errors(tmp_path: Path) -> None:
    store = DirIntegrations(tmp_path)
    with pytest.raises(PluginError) as info:
        await store.execute({"commandId": "c", "name": "dir.nope", "params": {}})
    assert info.value.code == "METHOD_NOT_FOUND"
    with pytest.raises(PluginError) as info:
        await store.execute({"commandId": "c", "name": "dir.touch", "params": {"name": "../x"}})
    assert info.value.code == "INVALID_PARAMS"
    assert not (tmp_path / ".executed").exists()


async def test_example_plugin_end_to_end(
    daemon: tuple[IpcServer, list[PluginSession]], sock_path: Path, tmp_path: Path
) -> None:
    server, _ = daemon
    plugin = build_plugin(DirIntegrations(tmp_path), backoff_initial=0.05, backoff_max=0.1)
    task = await start(plugin, sock_path)
    session = server.registry.by_name("dir-integrations")
    assert session is not None
    await session.request("integration.install", install_params())
    await session.request("integration.activate", {"integrationId": "github"})
    listing = await session.request("integration.list", {})
    assert listing["integrations"][0]["status"] == "active"
    result = await session.request(
        "command.execute", {"commandId": "c9", "name": "dir.touch", "params": {"name": "f"}}
    )
    assert result["result"]["path"].endswith("touched/f")
    await plugin.stop()
    await task
