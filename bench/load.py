"""Load generation over raw aiohttp WebSockets: handshakes, pipelined requests, idle fan-out.

Every coroutine here is bounded in count and in time. Responses and events are recognised
by their first bytes (both servers encode with orjson, `type` first), so the load generator
spends its CPU on sockets rather than on parsing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType

__all__ = [
    "Fanout",
    "FrameMaker",
    "GatewayOpener",
    "IdlePool",
    "Opener",
    "ThroughputResult",
    "echo_maker",
    "echo_opener",
    "frame_maker",
    "open_many",
    "request_text",
    "roundtrip",
    "sessions",
    "throughput",
    "timed_connects",
]

RES_PREFIX: Final = '{"type":"res"'
PRESENCE_PREFIX: Final = '{"type":"event","event":"presence"'
_OK_WINDOW: Final = 320  # `"ok":` sits right after the id; ids here are short
_OPEN_TIMEOUT_S: Final = 10.0
_ID_MARK: Final = "@@id@@"
_ECHO_RESPONSE_BASE: Final = len(b'{"type":"res","id":"0","ok":true,"payload":{"pad":""}}')
_ECHO_EVENT_BASE: Final = len(b'{"type":"event","event":"presence","payload":{"pad":""}}')
_RECEIVE_TIMEOUT_S: Final = 10.0

Opener = Callable[[ClientSession], Awaitable[ClientWebSocketResponse]]
FrameMaker = Callable[[int], str]


def request_text(request_id: str, method: str, params: Any) -> str:
    """Encode one request frame."""
    frame = {"type": "req", "id": request_id, "method": method, "params": params}
    return orjson.dumps(frame).decode()


def frame_maker(method: str, params: Any) -> FrameMaker:
    """Return a cheap `id -> frame text` function for one method and fixed params."""
    head, tail = request_text(_ID_MARK, method, params).split(_ID_MARK)
    return lambda number: f"{head}{number}{tail}"


def echo_maker(method: str, *, request_bytes: int, reply_bytes: int) -> FrameMaker:
    """Return echo-server requests of `request_bytes` whose reply is `reply_bytes` long.

    For `broadcast` the sized reply is the fanned-out event; otherwise it is the response.
    Sizes are exact for request id `0` and differ by the id's length otherwise.
    """
    base = _ECHO_EVENT_BASE if method == "broadcast" else _ECHO_RESPONSE_BASE
    pad = max(0, reply_bytes - base)
    unfilled = len(request_text("0", method, {"pad": pad, "fill": ""}))
    fill = "x" * max(0, request_bytes - unfilled)
    return frame_maker(method, {"pad": pad, "fill": fill})


def sessions(count: int) -> list[ClientSession]:
    """Create `count` client sessions with no connection cap and no compression defaults."""
    return [
        ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        for _ in range(count)
    ]


async def open_many(
    open_ws: Opener, client_sessions: list[ClientSession], count: int, *, concurrency: int = 16
) -> tuple[list[ClientWebSocketResponse], list[BaseException]]:
    """Open `count` sockets over `client_sessions`, at most `concurrency` handshakes at once.

    The default stays below the gateway's limit of 32 unauthenticated sockets per IP.
    """
    gate = asyncio.Semaphore(concurrency)

    async def open_one(index: int) -> ClientWebSocketResponse:
        """Open socket `index` on its session once a slot is free."""
        async with gate:
            return await open_ws(client_sessions[index % len(client_sessions)])

    results = await asyncio.gather(
        *(open_one(index) for index in range(count)), return_exceptions=True
    )
    opened = [ws for ws in results if isinstance(ws, ClientWebSocketResponse)]
    return opened, [exc for exc in results if isinstance(exc, BaseException)]


async def _ws_connect(
    session: ClientSession, url: str, *, decode_text: bool = True
) -> ClientWebSocketResponse:
    """Open a WebSocket with the bench's client settings.

    With `decode_text=False` text frames arrive as bytes: a client that only drains its
    socket then spends no CPU decoding UTF-8 (presence lists to 1000 clients are large).
    """
    return await session.ws_connect(
        url,
        compress=0,
        autoping=True,
        heartbeat=None,
        max_msg_size=0,
        autoclose=True,
        decode_text=decode_text,
    )


async def _receive_text(ws: ClientWebSocketResponse) -> str:
    """Return the next text frame.

    Raises:
        ConnectionError: the socket closed or sent something else.
    """
    message = await ws.receive(timeout=_RECEIVE_TIMEOUT_S)
    if message.type is not WSMsgType.TEXT:
        raise ConnectionError(f"expected a text frame, got {message.type!r} {message.data!r}")
    data = message.data
    return data.decode() if isinstance(data, bytes) else str(data)


async def await_response(ws: ClientWebSocketResponse, request_id: str) -> str:
    """Read frames until the response to `request_id`; return its text, skipping events."""
    needle = f'{RES_PREFIX},"id":{orjson.dumps(request_id).decode()},'
    while True:
        text = await _receive_text(ws)
        if text.startswith(needle):
            return text


class GatewayOpener:
    """Connect and complete the gateway handshake, up to `hello-ok`; remember its size."""

    def __init__(
        self, url: str, token: str, mode: str = "cli", *, decode_text: bool = True
    ) -> None:
        self._url = url
        self._decode_text = decode_text
        self._connect = request_text(
            "c",
            "connect",
            {
                "minProtocol": 3,
                "maxProtocol": 4,
                "client": {"id": "test", "version": "1", "platform": "linux", "mode": mode},
                "scopes": ["operator.admin"],
                "auth": {"token": token},
            },
        )
        self.connect_bytes = len(self._connect)
        self.hello_bytes = 0
        #: The text of the last `hello-ok` (its snapshot holds the presence list).
        self.last_hello = ""

    async def __call__(self, session: ClientSession) -> ClientWebSocketResponse:
        """Open one socket and finish its handshake."""
        async with asyncio.timeout(_OPEN_TIMEOUT_S):
            ws = await _ws_connect(session, self._url, decode_text=self._decode_text)
            try:
                challenge = await _receive_text(ws)
                if '"connect.challenge"' not in challenge:
                    raise ConnectionError(f"expected connect.challenge, got {challenge[:200]}")
                await ws.send_str(self._connect)
                hello = await await_response(ws, "c")
                if not hello.startswith('{"type":"res","id":"c","ok":true'):
                    raise ConnectionError(f"handshake refused: {hello[:300]}")
            except BaseException:
                await ws.close()
                raise
            self.hello_bytes = len(hello)
            self.last_hello = hello
            return ws


def echo_opener(url: str) -> Opener:
    """Return an opener that only opens a WebSocket to the echo server."""

    async def open_echo(session: ClientSession) -> ClientWebSocketResponse:
        """Open one echo socket."""
        async with asyncio.timeout(_OPEN_TIMEOUT_S):
            return await _ws_connect(session, url)

    return open_echo


async def roundtrip(ws: ClientWebSocketResponse, request_id: str, text: str) -> str:
    """Send one request and return the text of its response."""
    await ws.send_str(text)
    async with asyncio.timeout(_RECEIVE_TIMEOUT_S):
        return await await_response(ws, request_id)


async def timed_connects(
    session: ClientSession,
    open_ws: Opener,
    count: int,
    budget_s: float,
    then: Callable[[ClientWebSocketResponse], Awaitable[object]] | None = None,
) -> list[float]:
    """Open and close `count` sockets one after another; return seconds per open.

    The timed span is `open_ws` plus `then` (the echo baseline adds one round trip there);
    closing is not timed. Stops early when `budget_s` is spent.
    """
    samples: list[float] = []
    deadline = time.monotonic() + budget_s
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        started = time.monotonic()
        ws = await open_ws(session)
        try:
            if then is not None:
                await then(ws)
            samples.append(time.monotonic() - started)
        finally:
            await ws.close()
    return samples


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    """What one throughput run achieved."""

    responses: int
    errors: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Responses per second."""
        return self.responses / self.seconds if self.seconds > 0 else 0.0


async def _pump(
    ws: ClientWebSocketResponse, make: FrameMaker, window: int, deadline: float, limit: int
) -> tuple[int, int]:
    """Keep `window` requests in flight on one socket until the deadline or `limit` is hit."""
    sent = received = errors = 0
    while sent < min(window, limit):
        await ws.send_str(make(sent))
        sent += 1
    while received < sent:
        text = await _receive_text(ws)
        if not text.startswith(RES_PREFIX):
            continue  # an event (tick, health, …)
        received += 1
        if text.find('"ok":true', 0, _OK_WINDOW) < 0:
            errors += 1
        if sent < limit and time.monotonic() < deadline:
            await ws.send_str(make(sent))
            sent += 1
    return received, errors


async def throughput(
    sockets: list[ClientWebSocketResponse],
    make: FrameMaker,
    *,
    window: int,
    duration_s: float,
    limit_per_socket: int,
) -> ThroughputResult:
    """Drive every socket at once with `window` requests in flight; count responses."""
    started = time.monotonic()
    deadline = started + duration_s
    async with asyncio.timeout(duration_s + 3 * _RECEIVE_TIMEOUT_S):
        counts = await asyncio.gather(
            *(_pump(ws, make, window, deadline, limit_per_socket) for ws in sockets)
        )
    seconds = time.monotonic() - started
    return ThroughputResult(
        responses=sum(count for count, _ in counts),
        errors=sum(errors for _, errors in counts),
        seconds=seconds,
    )


@dataclass(frozen=True, slots=True)
class Fanout:
    """Delivery latencies of broadcast rounds to an idle pool."""

    latencies_s: list[float]
    lost: int
    rounds: int
    event_bytes: int


class IdlePool:
    """Many open, otherwise idle sockets, each with a reader that timestamps `presence` events.

    Sockets are spread over several client sessions and opened a few at a time, fewer than
    the gateway's 32-unauthenticated-sockets-per-IP limit.
    """

    def __init__(
        self, open_ws: Opener, count: int, *, session_count: int = 4, concurrency: int = 16
    ) -> None:
        self._open_ws = open_ws
        self._count = count
        self._session_count = session_count
        self._concurrency = concurrency
        self._sessions: list[ClientSession] = []
        self._sockets: list[ClientWebSocketResponse] = []
        self._readers: list[asyncio.Task[None]] = []
        self._arrivals: list[float | None] = []
        self._pending = 0
        self._all_arrived = asyncio.Event()
        self._event_bytes = 0

    def __len__(self) -> int:
        return len(self._sockets)

    async def open(self, budget_s: float) -> None:
        """Open every socket and start its reader, within `budget_s`."""
        self._sessions = sessions(self._session_count)
        async with asyncio.timeout(budget_s):
            self._sockets, failures = await open_many(
                self._open_ws, self._sessions, self._count, concurrency=self._concurrency
            )
        self._arrivals = [None] * len(self._sockets)
        self._readers = [
            asyncio.create_task(self._read(index, ws)) for index, ws in enumerate(self._sockets)
        ]
        if failures:
            raise RuntimeError(f"{len(failures)} of {self._count} sockets failed: {failures[0]!r}")

    async def close(self) -> None:
        """Stop the readers, close every socket and session."""
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        async with asyncio.timeout(30):
            await asyncio.gather(*(ws.close() for ws in self._sockets), return_exceptions=True)
            await asyncio.gather(*(s.close() for s in self._sessions), return_exceptions=True)
        self._readers, self._sockets, self._sessions = [], [], []

    async def _read(self, index: int, ws: ClientWebSocketResponse) -> None:
        """Timestamp the first `presence` event of each round on one socket."""
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            text = message.data
            if text.startswith(PRESENCE_PREFIX) and self._arrivals[index] is None:
                self._arrivals[index] = time.monotonic()
                self._event_bytes = len(text)
                self._pending -= 1
                if self._pending == 0:
                    self._all_arrived.set()

    async def fanout(
        self,
        sender: ClientWebSocketResponse,
        make: FrameMaker,
        *,
        rounds: int,
        round_timeout_s: float,
        gap_s: float,
    ) -> Fanout:
        """Send `rounds` broadcast-triggering requests; time each delivery from the send."""
        latencies: list[float] = []
        lost = 0
        for number in range(rounds):
            self._arrivals = [None] * len(self._sockets)
            self._pending = len(self._sockets)
            self._all_arrived.clear()
            sent_at = time.monotonic()
            await sender.send_str(make(number))
            try:
                async with asyncio.timeout(round_timeout_s):
                    await self._all_arrived.wait()
            except TimeoutError:
                pass
            arrivals = self._arrivals
            latencies.extend(at - sent_at for at in arrivals if at is not None)
            lost += sum(1 for at in arrivals if at is None)
            async with asyncio.timeout(_RECEIVE_TIMEOUT_S):
                await await_response(sender, str(number))
            await asyncio.sleep(gap_s)
        return Fanout(latencies, lost, rounds, self._event_bytes)
