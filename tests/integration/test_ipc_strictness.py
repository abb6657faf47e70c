"""Both ends of plugin IPC apply the same wire rules (spec §2.1-§2.3), over real Unix sockets.

Each rule is driven against the daemon's `IpcServer` (a raw peer plays the plugin) and
against the SDK's `Plugin` (a raw peer plays the daemon); both ends must answer a bad frame
with the same error frame and close, ignore the same frames, and refuse the same
registrations and oversized frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import orjson
import pytest

from clawgate.ipc import IpcError, IpcServer, PluginSession
from clawgate.plugin import MAX_FRAME_BYTES, Plugin, PluginError
from clawgate.protocol.ipc.frames import encode_request, encode_response
from clawgate.protocol.ipc.registration import register_params

WAIT_S = 5.0
#: Sent right after the frame under test: its answer shows the connection survived.
PROBE = encode_request("probe", "ping", {})

# Malformed frames: INVALID_FRAME, then close, on both ends. Until the ends shared one parser
# the SDK took most of them, or echoed an id too long or empty to be used.
INVALID: list[tuple[str, bytes, str | None]] = [
    ("ok-not-boolean", b'{"type":"res","id":"a","ok":"true"}', None),
    ("ok-number", b'{"type":"res","id":"a","ok":1,"payload":{}}', None),
    ("ok-missing", b'{"type":"res","id":"a","payload":{}}', None),
    ("response-id-number", b'{"type":"res","id":5,"ok":true}', None),
    ("response-id-empty", b'{"type":"res","id":"","ok":true}', None),
    ("response-id-over-128", orjson.dumps({"type": "res", "id": "r" * 129, "ok": True}), None),
    ("payload-not-object", b'{"type":"res","id":"a","ok":true,"payload":[1]}', None),
    ("failure-without-error", b'{"type":"res","id":"a","ok":false}', None),
    ("error-not-object", b'{"type":"res","id":"a","ok":false,"error":"boom"}', None),
    ("event-name-number", b'{"type":"event","event":5}', None),
    ("event-name-empty", b'{"type":"event","event":""}', None),
    ("event-payload-not-object", b'{"type":"event","event":"e","payload":3}', None),
    ("request-method-empty", b'{"type":"req","id":"q","method":""}', "q"),
    ("request-method-number", b'{"type":"req","id":"q","method":7}', "q"),
    ("request-params-not-object", b'{"type":"req","id":"q","method":"m","params":[]}', "q"),
    ("request-id-missing", b'{"type":"req","method":"ping"}', None),
    ("request-id-empty", b'{"type":"req","id":"","method":"ping"}', None),
    ("request-id-over-128", orjson.dumps({"type": "req", "id": "q" * 129, "method": "m"}), None),
    ("not-utf8", b"\xff\xfe{}", None),
    ("not-json", b"{nope", None),
    ("not-object", b"[1,2]", None),
]

# Frames both ends log and ignore, keeping the connection.
IGNORED: list[tuple[str, bytes]] = [
    ("unknown-type", b'{"type":"gossip","id":"a"}'),
    ("type-number", b'{"type":5}'),
    ("no-type-no-ok", b'{"id":"a","method":"ping"}'),
    ("response-to-nothing", b'{"type":"res","id":"nobody","ok":true}'),
    ("null-id-error", b'{"type":"res","id":null,"ok":false,"error":{"code":"X","message":"m"}}'),
    ("error-odd-members", b'{"id":"nobody","ok":false,"error":{"code":"","retryable":"no"}}'),
]


async def _big(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
    return {"pad": "x" * MAX_FRAME_BYTES}


@pytest.fixture
async def server(socket_dir: Path) -> AsyncIterator[IpcServer]:
    srv = IpcServer(
        socket_dir / "gw.sock",
        daemon_id="daemon-1",
        daemon_version="0.1.0",
        handlers={"big": _big},
    )
    await srv.start()
    yield srv
    await srv.stop(grace_ms=0)


def _plugin(name: str = "strict", **kwargs: Any) -> Plugin:
    return Plugin(name, version="1.0", backoff_initial=0.05, backoff_max=0.1, **kwargs)


Answer = tuple[list[dict[str, Any]], bool]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, until_eof: bool
) -> Answer:
    """Send `data` and a probe; return the answers, payloads dropped, and whether EOF came."""
    # Reading stops at the probe's answer, which shows the peer kept the connection, unless
    # `until_eof` asks for everything it sends before it closes.
    writer.write(data + PROBE)
    await writer.drain()
    replies: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        while line := await reader.readline():
            reply: dict[str, Any] = orjson.loads(line)
            reply.pop("payload", None)
            replies.append(reply)
            if reply["id"] == "probe" and not until_eof:
                return replies, False
    return replies, True


async def _at_daemon(server: IpcServer, data: bytes, until_eof: bool = False) -> Answer:
    """Play a registered plugin: send `data` to the daemon and return its answer."""
    reader, writer = await asyncio.open_unix_connection(
        str(server.socket_path), limit=4 * MAX_FRAME_BYTES
    )
    try:
        params = register_params(name="raw", version="1.0", capabilities=[])
        writer.write(encode_request("reg", "register", params))
        assert orjson.loads(await reader.readline())["ok"] is True
        return await _exchange(reader, writer, data, until_eof)
    finally:
        writer.close()


async def _at_plugin(socket_dir: Path, data: bytes, until_eof: bool = False) -> Answer:
    """Play the daemon: register an SDK plugin, send `data` and return its answer."""
    answers: asyncio.Queue[Answer] = asyncio.Queue()
    connections = 0

    async def daemon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        with contextlib.suppress(ConnectionError):
            line = await reader.readline()
            if line:
                writer.write(encode_response(orjson.loads(line)["id"], {"connectionId": "c"}))
                if first:
                    answers.put_nowait(await _exchange(reader, writer, data, until_eof))
                # Hold the connection (or the plugin's reconnect) until the plugin stops.
                await reader.read()
        writer.close()

    path = socket_dir / "fake.sock"
    fake = await asyncio.start_unix_server(daemon, path=str(path), limit=4 * MAX_FRAME_BYTES)
    plugin = _plugin()
    task = asyncio.create_task(plugin.run(path))
    try:
        async with asyncio.timeout(WAIT_S):
            return await answers.get()
    finally:
        await plugin.stop()
        await task
        fake.close()
        await fake.wait_closed()


PROBED: Final = {"type": "res", "id": "probe", "ok": True}
TOO_LARGE: Final = {
    "type": "res",
    "id": None,
    "ok": False,
    "error": {"code": "FRAME_TOO_LARGE", "message": "frame exceeds 1 MiB", "retryable": False},
}


@pytest.mark.parametrize(
    ("line", "reply_id"), [r[1:] for r in INVALID], ids=[r[0] for r in INVALID]
)
async def test_both_ends_answer_invalid_frame_and_close(
    server: IpcServer, socket_dir: Path, line: bytes, reply_id: str | None
) -> None:
    at_daemon = await _at_daemon(server, line + b"\n")
    at_plugin = await _at_plugin(socket_dir, line + b"\n")
    assert at_daemon == at_plugin
    [reply], closed = at_daemon
    assert reply["id"] == reply_id
    assert reply["error"]["code"] == "INVALID_FRAME"
    assert reply["error"]["retryable"] is False
    assert closed


@pytest.mark.parametrize("line", [r[1] for r in IGNORED], ids=[r[0] for r in IGNORED])
async def test_both_ends_ignore_the_same_frames(
    server: IpcServer, socket_dir: Path, line: bytes
) -> None:
    at_daemon = await _at_daemon(server, line + b"\n")
    at_plugin = await _at_plugin(socket_dir, line + b"\n")
    assert at_daemon == at_plugin == ([PROBED], False)


async def test_both_ends_answer_frame_too_large_and_close(
    server: IpcServer, socket_dir: Path
) -> None:
    line = b"x" * (MAX_FRAME_BYTES + 1)
    at_daemon = await _at_daemon(server, line)
    at_plugin = await _at_plugin(socket_dir, line)
    assert at_daemon == at_plugin == ([TOO_LARGE], True)


async def test_both_ends_answer_frames_sent_before_an_oversized_one(
    server: IpcServer, socket_dir: Path
) -> None:
    data = PROBE + b"x" * (MAX_FRAME_BYTES + 1)
    daemon_replies, daemon_closed = await _at_daemon(server, data, until_eof=True)
    plugin_replies, plugin_closed = await _at_plugin(socket_dir, data, until_eof=True)
    # The SDK answers requests in tasks, so its answer may follow the error frame.
    for replies in (daemon_replies, plugin_replies):
        assert sorted(replies, key=lambda r: str(r["id"])) == [TOO_LARGE, PROBED]
    assert daemon_closed and plugin_closed


async def test_both_ends_accept_a_frame_of_exactly_one_mib(
    server: IpcServer, socket_dir: Path
) -> None:
    head, tail = b'{"type":"event","event":"pad","payload":{"pad":"', b'"}}'
    line = head + b"x" * (MAX_FRAME_BYTES - len(head) - len(tail)) + tail + b"\n"
    at_daemon = await _at_daemon(server, line)
    at_plugin = await _at_plugin(socket_dir, line)
    assert at_daemon == at_plugin == ([PROBED], False)


@pytest.mark.parametrize(
    ("params", "path"),
    [
        pytest.param({"name": "agent\n"}, "/name", id="name-trailing-lf"),
        pytest.param({"name": "Agent"}, "/name", id="name-upper"),
        pytest.param({"version": ""}, "/version", id="version-empty"),
        pytest.param({"capabilities": ["mail\n"]}, "/capabilities/0", id="capability-trailing-lf"),
        pytest.param({"capabilities": ["mail", "mail"]}, "/capabilities/1", id="capability-twice"),
        pytest.param(
            {"capabilities": [f"c{i}" for i in range(65)]}, "/capabilities", id="capabilities-65"
        ),
    ],
)
async def test_both_ends_refuse_the_same_registrations(
    server: IpcServer, params: dict[str, Any], path: str
) -> None:
    wire = register_params(name="agent", version="1.0", capabilities=[]) | params
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    try:
        writer.write(encode_request("reg", "register", wire))
        async with asyncio.timeout(WAIT_S):
            reply = orjson.loads(await reader.readline())
    finally:
        writer.close()
    assert reply["error"]["code"] == "INVALID_PARAMS"
    assert [e["path"] for e in reply["error"]["details"]["errors"]] == [path]
    with pytest.raises(ValueError, match=path):
        Plugin(wire["name"], version=wire["version"], capabilities=wire["capabilities"])


async def test_both_ends_refuse_to_send_a_request_over_one_mib(server: IpcServer) -> None:
    plugin = _plugin()
    task = asyncio.create_task(plugin.run(server.socket_path))
    try:
        await plugin.wait_registered(WAIT_S)
        session = server.registry.by_name("strict")
        assert session is not None
        blob = {"pad": "x" * MAX_FRAME_BYTES}
        with pytest.raises(IpcError) as daemon_side:
            await session.request("integration.install", blob)
        with pytest.raises(PluginError) as plugin_side:
            await plugin.call("big", blob)
        for caught in (daemon_side.value, plugin_side.value):
            assert (caught.code, caught.retryable) == ("INVALID_PARAMS", False)
        # Nothing reached the wire, so the connection is still up both ways.
        assert "now" in await plugin.call("ping")
        assert "now" in await session.request("ping", {})
    finally:
        await plugin.stop()
        await task


async def test_both_ends_answer_internal_instead_of_a_response_over_one_mib(
    server: IpcServer,
) -> None:
    plugin = _plugin()

    @plugin.handler("big")
    async def plugin_big(params: dict[str, Any]) -> dict[str, Any]:
        return {"pad": "x" * MAX_FRAME_BYTES}

    task = asyncio.create_task(plugin.run(server.socket_path))
    try:
        await plugin.wait_registered(WAIT_S)
        session = server.registry.by_name("strict")
        assert session is not None
        with pytest.raises(IpcError) as daemon_answer:
            await plugin.call("big")
        with pytest.raises(IpcError) as plugin_answer:
            await session.request("big", {})
        for caught in (daemon_answer.value, plugin_answer.value):
            assert (caught.code, caught.retryable) == ("INTERNAL", False)
            assert "over the 1 MiB frame limit" in caught.message
        assert "now" in await plugin.call("ping")
    finally:
        await plugin.stop()
        await task
