"""The plugin IPC server over real Unix sockets (spec §1.3, §1.4, §2)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvloop

from clawgate.ipc import AlreadyServing, IpcError, IpcServer, PluginSession, SocketPathError
from clawgate.protocol.ipc.framing import MAX_FRAME_BYTES

RECV_TIMEOUT_S = 3.0


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to about 104 bytes; pytest's tmp_path is often longer.
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="cg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _make_server(path: Path, **kwargs: Any) -> IpcServer:
    return IpcServer(path, daemon_id="daemon-1", daemon_version="0.1.0", **kwargs)


@pytest.fixture
async def server(sock_dir: Path) -> AsyncIterator[IpcServer]:
    async def echo(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        return {"from": session.name, "params": params}

    srv = _make_server(sock_dir / "gw.sock", handlers={"echo": echo}, clock=lambda: 0.0)
    await srv.start()
    yield srv
    await srv.stop(grace_ms=100)


class Plugin:
    """A hand-driven plugin end of the socket."""

    opened: list[Plugin] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._n = 0

    @classmethod
    async def connect(cls, path: Path) -> Plugin:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_FRAME_BYTES)
        plugin = cls(reader, writer)
        cls.opened.append(plugin)
        return plugin

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, obj: dict[str, Any]) -> None:
        await self.send_raw(orjson.dumps(obj) + b"\n")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> str:
        self._n += 1
        request_id = f"r{self._n}"
        frame: dict[str, Any] = {"type": "req", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        await self.send(frame)
        return request_id

    async def recv(self, timeout: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        assert line, "connection closed"
        frame: dict[str, Any] = orjson.loads(line)
        return frame

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = await self.request(method, params)
        frame = await self.recv()
        assert frame["id"] == request_id
        return frame

    async def register(self, name: str = "agent", **extra: Any) -> dict[str, Any]:
        params = {"name": name, "version": "1.0", "protocolVersion": 1, "capabilities": ["mail"]}
        params.update(extra)
        return await self.call("register", params)

    async def closed(self, timeout: float = RECV_TIMEOUT_S) -> bool:
        async with asyncio.timeout(timeout):
            return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
async def _close_plugins() -> AsyncIterator[None]:
    yield
    plugins, Plugin.opened = Plugin.opened, []
    for plugin in plugins:
        plugin.writer.close()
        with contextlib.suppress(ConnectionError):
            await plugin.writer.wait_closed()


async def _until(predicate: Callable[[], bool], timeout: float = RECV_TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# -- start-up and files -------------------------------------------------------------------


async def test_socket_mode_is_0600(server: IpcServer) -> None:
    st = os.stat(server.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


async def test_stale_socket_is_removed_after_failed_probe(sock_dir: Path) -> None:
    path = sock_dir / "gw.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound but never listening: connect is refused
    stale.close()
    srv = _make_server(path)
    await srv.start()
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        plugin = await Plugin.connect(path)
        assert (await plugin.register())["ok"] is True
        plugin.close()
    finally:
        await srv.stop(grace_ms=0)


async def test_live_socket_raises_already_serving_and_is_kept(server: IpcServer) -> None:
    second = _make_server(server.socket_path)
    with pytest.raises(AlreadyServing):
        await second.start()
    plugin = await Plugin.connect(server.socket_path)
    assert (await plugin.register())["ok"] is True
    plugin.close()


async def test_non_socket_path_is_refused_and_kept(sock_dir: Path) -> None:
    path = sock_dir / "gw.sock"
    path.write_text("precious")
    with pytest.raises(SocketPathError):
        await _make_server(path).start()
    assert path.read_text() == "precious"


async def test_too_long_path_is_refused(sock_dir: Path) -> None:
    with pytest.raises(SocketPathError):
        await _make_server(sock_dir / ("x" * 120)).start()


async def test_stop_sends_shutdown_and_removes_socket(sock_dir: Path) -> None:
    path = sock_dir / "gw.sock"
    srv = _make_server(path)
    await srv.start()
    plugin = await Plugin.connect(path)
    await plugin.register()
    await srv.stop(grace_ms=1234)
    event = await plugin.recv()
    assert event == {
        "type": "event",
        "event": "daemon.shutdown",
        "payload": {"reason": "stop", "graceMs": 1234},
    }
    assert await plugin.closed()
    assert not path.exists()
    assert not srv.serving and srv.connection_count() == 0


async def test_stop_leaves_a_replaced_socket_file(sock_dir: Path) -> None:
    path = sock_dir / "gw.sock"
    srv = _make_server(path)
    await srv.start()
    path.unlink()
    path.write_text("someone else")
    await srv.stop(grace_ms=0)
    assert path.read_text() == "someone else"


# -- peer credentials ---------------------------------------------------------------------


async def test_other_uid_is_closed_without_a_byte(sock_dir: Path) -> None:
    path = sock_dir / "gw.sock"
    srv = _make_server(path, peer_uid_reader=lambda sock: os.geteuid() + 1)
    await srv.start()
    try:
        plugin = await Plugin.connect(path)
        assert await plugin.closed()  # EOF with zero bytes received
        assert srv.registry.sessions() == []
    finally:
        await srv.stop(grace_ms=0)


async def test_unknown_uid_is_refused(sock_dir: Path) -> None:
    path = sock_dir / "gw.sock"
    srv = _make_server(path, peer_uid_reader=lambda sock: None)
    await srv.start()
    try:
        plugin = await Plugin.connect(path)
        assert await plugin.closed()
    finally:
        await srv.stop(grace_ms=0)


# -- registration ---------------------------------------------------------------------------


async def test_register_result(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    frame = await plugin.register()
    payload = frame["payload"]
    assert frame["ok"] is True
    assert payload["status"] == "registered"
    assert payload["daemonId"] == "daemon-1"
    assert payload["daemonVersion"] == "0.1.0"
    assert payload["protocolVersion"] == 1
    assert payload["cloudConnected"] is False
    session = server.registry.by_name("agent")
    assert session is not None and session.connection_id == payload["connectionId"]


async def test_requests_before_register_get_not_registered_and_stay_open(
    server: IpcServer,
) -> None:
    plugin = await Plugin.connect(server.socket_path)
    frame = await plugin.call("ping")
    assert frame["error"]["code"] == "NOT_REGISTERED"
    assert (await plugin.register())["ok"] is True
    assert (await plugin.call("ping"))["payload"] == {"now": "1970-01-01T00:00:00.000Z"}


async def test_second_register_fails_already_registered(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    assert (await plugin.register())["error"]["code"] == "ALREADY_REGISTERED"


async def test_bad_name_gets_invalid_params_with_errors(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    frame = await plugin.register(name="Bad Name")
    assert frame["error"]["code"] == "INVALID_PARAMS"
    assert frame["error"]["details"]["errors"][0]["path"] == "/name"
    assert (await plugin.register())["ok"] is True


async def test_unsupported_protocol_is_answered_then_closed(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    frame = await plugin.register(protocolVersion=3, minProtocolVersion=2)
    assert frame["error"]["code"] == "UNSUPPORTED_PROTOCOL"
    assert frame["error"]["details"] == {"supported": {"min": 1, "max": 1}}
    assert await plugin.closed()


async def test_newer_protocol_negotiates_down(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    frame = await plugin.register(protocolVersion=4, minProtocolVersion=1)
    assert frame["payload"]["protocolVersion"] == 1


async def test_connection_without_register_is_closed_after_deadline(sock_dir: Path) -> None:
    srv = _make_server(sock_dir / "gw.sock", register_timeout_s=0.2)
    await srv.start()
    try:
        plugin = await Plugin.connect(srv.socket_path)
        assert await plugin.closed()
    finally:
        await srv.stop(grace_ms=0)


async def test_same_name_replaces_older_connection(server: IpcServer) -> None:
    order: list[tuple[str, str]] = []
    server.registry.on_register = lambda s: order.append(("register", s.connection_id))
    server.registry.on_disconnect = lambda s: order.append(("disconnect", s.connection_id))
    old = await Plugin.connect(server.socket_path)
    old_id = (await old.register())["payload"]["connectionId"]
    new = await Plugin.connect(server.socket_path)
    new_id = (await new.register())["payload"]["connectionId"]
    assert await old.closed()
    assert order == [("register", old_id), ("disconnect", old_id), ("register", new_id)]
    session = server.registry.by_name("agent")
    assert session is not None and session.connection_id == new_id


async def test_on_register_events_follow_the_response(server: IpcServer) -> None:
    server.registry.on_register = lambda s: s.send_event("cloud.status", {"connected": False})
    plugin = await Plugin.connect(server.socket_path)
    assert (await plugin.register())["ok"] is True
    assert (await plugin.recv())["event"] == "cloud.status"


# -- plugin to daemon methods ----------------------------------------------------------------


async def test_handler_receives_session_and_params(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    frame = await plugin.call("echo", {"x": 1})
    assert frame["payload"] == {"from": "agent", "params": {"x": 1}}


async def test_unknown_method_is_method_not_found(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    assert (await plugin.call("nope"))["error"]["code"] == "METHOD_NOT_FOUND"


async def test_handler_errors_are_mapped(sock_dir: Path) -> None:
    async def not_found(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        raise IpcError("NOT_FOUND", "no such integration")

    async def crash(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret detail")

    srv = _make_server(sock_dir / "gw.sock", handlers={"nf": not_found, "crash": crash})
    await srv.start()
    try:
        plugin = await Plugin.connect(srv.socket_path)
        await plugin.register()
        assert (await plugin.call("nf"))["error"]["code"] == "NOT_FOUND"
        error = (await plugin.call("crash"))["error"]
        assert error == {"code": "INTERNAL", "message": "internal error", "retryable": False}
    finally:
        await srv.stop(grace_ms=0)


async def test_unencodable_handler_result_is_answered_internal(sock_dir: Path) -> None:
    async def odd(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        return {"value": object()}

    srv = _make_server(sock_dir / "gw.sock", handlers={"odd": odd})
    await srv.start()
    try:
        plugin = await Plugin.connect(srv.socket_path)
        await plugin.register()
        error = (await plugin.call("odd"))["error"]
        assert error == {"code": "INTERNAL", "message": "internal error", "retryable": False}
        assert (await plugin.call("ping"))["ok"] is True
    finally:
        await srv.stop(grace_ms=0)


async def test_plugin_events_are_ignored(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    await plugin.send({"type": "event", "event": "whatever"})
    await plugin.send({"type": "mystery"})
    await plugin.send({"type": "res", "id": "unknown", "ok": True})
    assert (await plugin.call("ping"))["ok"] is True


# -- framing at the socket ------------------------------------------------------------------


async def test_crlf_empty_lines_and_split_frames_are_accepted(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    await plugin.send_raw(b'\r\n\n{"type":"req","id":"a",')
    await asyncio.sleep(0.05)
    await plugin.send_raw(b'"method":"ping"}\r\n')
    frame = await plugin.recv()
    assert frame["id"] == "a" and frame["ok"] is True


async def test_frame_of_exactly_one_mib_is_accepted(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    # `ping` answers small: the frame under test is the request, not the response.
    head = b'{"type":"req","id":"big","method":"ping","params":{"pad":"'
    tail = b'"}}'
    pad = b"x" * (MAX_FRAME_BYTES - len(head) - len(tail))
    await plugin.send_raw(head + pad + tail + b"\n")
    frame = await plugin.recv()
    assert frame["id"] == "big" and frame["ok"] is True


async def test_response_over_one_mib_is_answered_internal_instead(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    # The request stays under the limit; the echo, in its larger envelope, goes over.
    frame = await plugin.call("echo", {"pad": "x" * (MAX_FRAME_BYTES - 64)})
    assert frame["ok"] is False
    assert frame["error"]["code"] == "INTERNAL"
    assert "over the 1 MiB frame limit" in frame["error"]["message"]
    assert (await plugin.call("ping"))["ok"] is True


async def test_frame_over_one_mib_gets_frame_too_large_then_close(server: IpcServer) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register()
    await plugin.send_raw(b"x" * (MAX_FRAME_BYTES + 1))  # no newline: must not wait for one
    frame = await plugin.recv()
    assert frame["id"] is None and frame["error"]["code"] == "FRAME_TOO_LARGE"
    assert await plugin.closed()
    await _until(lambda: server.registry.by_name("agent") is None)


@pytest.mark.parametrize(
    ("line", "reply_id"),
    [
        (b"\xff\xff\n", None),
        (b"{nope\n", None),
        (b"[1]\n", None),
        (b'{"type":"req","method":"ping"}\n', None),
        (b'{"type":"req","id":"q","method":7}\n', "q"),
    ],
)
async def test_malformed_frame_gets_invalid_frame_then_close(
    server: IpcServer, line: bytes, reply_id: str | None
) -> None:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.send_raw(line)
    frame = await plugin.recv()
    assert frame["id"] == reply_id
    assert frame["error"]["code"] == "INVALID_FRAME"
    assert await plugin.closed(timeout=1.5)


# -- daemon to plugin requests ----------------------------------------------------------------


async def _registered(server: IpcServer, name: str = "agent") -> tuple[Plugin, PluginSession]:
    plugin = await Plugin.connect(server.socket_path)
    await plugin.register(name=name)
    session = server.registry.by_name(name)
    assert session is not None
    return plugin, session


async def test_daemon_request_round_trip(server: IpcServer) -> None:
    plugin, session = await _registered(server)
    call = asyncio.create_task(session.request("integration.activate", {"integrationId": "i"}))
    frame = await plugin.recv()
    assert frame["type"] == "req" and frame["method"] == "integration.activate"
    assert frame["params"] == {"integrationId": "i"}
    await plugin.send({"id": frame["id"], "ok": True, "payload": {"status": "active"}})
    assert await call == {"status": "active"}


async def test_daemon_request_error_response_raises(server: IpcServer) -> None:
    plugin, session = await _registered(server)
    call = asyncio.create_task(session.request("command.execute", {}, timeout_s=5))
    frame = await plugin.recv()
    error = {"code": "MY_CODE", "message": "nope", "retryable": True}
    await plugin.send({"type": "res", "id": frame["id"], "ok": False, "error": error})
    with pytest.raises(IpcError) as caught:
        await call
    assert (caught.value.code, caught.value.retryable) == ("MY_CODE", True)


async def test_daemon_request_times_out_and_late_reply_is_discarded(server: IpcServer) -> None:
    plugin, session = await _registered(server)
    with pytest.raises(IpcError) as caught:
        await session.request("integration.health", {}, timeout_s=0.1)
    assert caught.value.code == "TIMEOUT" and caught.value.retryable
    frame = await plugin.recv()
    await plugin.send({"id": frame["id"], "ok": True, "payload": {}})
    assert (await plugin.call("ping"))["ok"] is True


async def test_disconnect_fails_in_flight_requests(server: IpcServer) -> None:
    plugin, session = await _registered(server)
    call = asyncio.create_task(session.request("integration.install", {}))
    await plugin.recv()
    plugin.close()
    with pytest.raises(IpcError) as caught:
        await call
    assert caught.value.code == "PLUGIN_DISCONNECTED" and caught.value.retryable
    assert not session.live
    assert server.registry.by_name("agent") is None


async def test_replacement_fails_in_flight_requests_of_old_connection(server: IpcServer) -> None:
    old, session = await _registered(server)
    call = asyncio.create_task(session.request("integration.install", {}))
    await old.recv()
    new = await Plugin.connect(server.socket_path)
    await new.register()
    with pytest.raises(IpcError) as caught:
        await call
    assert caught.value.code == "PLUGIN_DISCONNECTED"


async def test_capability_routing_prefers_latest_registration(server: IpcServer) -> None:
    _p1, first = await _registered(server, "one")
    _p2, second = await _registered(server, "two")
    assert server.registry.for_capability("mail") is second
    _p2.close()
    await _until(lambda: not second.live)
    assert server.registry.for_capability("mail") is first


# -- liveness ---------------------------------------------------------------------------------


async def test_idle_plugin_is_pinged_and_kept_when_it_answers(sock_dir: Path) -> None:
    srv = _make_server(sock_dir / "gw.sock", ping_interval_s=0.1, ping_timeout_s=0.2)
    await srv.start()
    try:
        plugin = await Plugin.connect(srv.socket_path)
        await plugin.register()
        for _ in range(3):
            frame = await plugin.recv()
            assert frame["method"] == "ping"
            await plugin.send({"type": "res", "id": frame["id"], "ok": True, "payload": {}})
        assert srv.registry.by_name("agent") is not None
    finally:
        await srv.stop(grace_ms=0)


async def test_two_failed_pings_disconnect_the_plugin(sock_dir: Path) -> None:
    gone: list[PluginSession] = []
    srv = _make_server(sock_dir / "gw.sock", ping_interval_s=0.1, ping_timeout_s=0.1)
    srv.registry.on_disconnect = gone.append
    await srv.start()
    try:
        plugin = await Plugin.connect(srv.socket_path)
        await plugin.register()
        assert (await plugin.recv())["method"] == "ping"
        assert (await plugin.recv())["method"] == "ping"
        assert await plugin.closed()
        assert [s.name for s in gone] == ["agent"]
    finally:
        await srv.stop(grace_ms=0)


async def test_stop_waits_for_in_flight_handler(sock_dir: Path) -> None:
    release = asyncio.Event()

    async def slow(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"done": True}

    srv = _make_server(sock_dir / "gw.sock", handlers={"slow": slow})
    await srv.start()
    plugin = await Plugin.connect(srv.socket_path)
    await plugin.register()
    await plugin.request("slow")
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(srv.stop(grace_ms=2000))
    assert (await plugin.recv())["event"] == "daemon.shutdown"
    release.set()
    assert (await plugin.recv())["payload"] == {"done": True}
    await stopping
    assert await plugin.closed()


# -- a plugin that stops reading -----------------------------------------------------------

# The daemon runs on uvloop (`clawgate gateway run`), tests on asyncio's own loop: both, since
# they fail differently on a write to a transport closed under the writer.
_LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


async def _fill_until_closed(path: Path) -> None:
    server = _make_server(path, clock=lambda: 0.0)
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_FRAME_BYTES)
        await Plugin(reader, writer).register()
        session = server.registry.by_name("agent")
        assert session is not None
        # From here the plugin reads nothing: the daemon's queue grows past its cap.
        for _ in range(1_000):
            if server.registry.by_name("agent") is not session:
                break
            session.send_event("test.fill", {"blob": "x" * 256 * 1024})
            await asyncio.sleep(0)
        else:
            raise AssertionError("the slow consumer was never disconnected")
        # Still not reading until the daemon has closed its end (at its close deadline).
        await _until(lambda: server.connection_count() == 0, timeout=30)
        async with asyncio.timeout(30):
            while await reader.read(MAX_FRAME_BYTES):
                pass  # what the daemon wrote before it closed; then EOF
        writer.close()
    finally:
        await server.stop(grace_ms=100)


@pytest.mark.parametrize("loop", list(_LOOPS))
def test_a_slow_consumer_is_closed_without_an_error_or_traceback(
    sock_dir: Path, caplog: pytest.LogCaptureFixture, loop: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with asyncio.Runner(loop_factory=_LOOPS[loop]) as runner:
        runner.run(_fill_until_closed(sock_dir / "gw.sock"))
    assert any("slow consumer" in record.getMessage() for record in caplog.records)
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert [r.getMessage() for r in loud] == []
