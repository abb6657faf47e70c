"""A raw WebSocket peer for protocol tests: sends exactly the bytes a test chooses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

CLOSE_TYPES = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


def connect_params(token: str | None, **overrides: Any) -> dict[str, Any]:
    """Return valid ConnectParams for a test client, with `overrides` merged in."""
    params: dict[str, Any] = {
        "minProtocol": 3,
        "maxProtocol": 4,
        "client": {"id": "test", "version": "1.0", "platform": "linux", "mode": "test"},
        "scopes": ["operator.admin"],
    }
    if token is not None:
        params["auth"] = {"token": token}
    params.update(overrides)
    return params


def request(method: str, params: Any = None, frame_id: str = "r1") -> str:
    """Encode a request frame."""
    body: dict[str, Any] = {"type": "req", "id": frame_id, "method": method}
    if params is not None:
        body["params"] = params
    return orjson.dumps(body).decode()


@dataclass
class RawPeer:
    """One raw socket plus what it received."""

    ws: aiohttp.ClientWebSocketResponse
    challenge: dict[str, Any]
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, data: str | bytes) -> None:
        """Send a text frame (str) or a binary frame (bytes)."""
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def next_frame(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """Return the next JSON frame, or None when the socket closed."""
        message = await self.ws.receive(timeout=timeout)
        if message.type in CLOSE_TYPES or message.type is aiohttp.WSMsgType.ERROR:
            return None
        frame: dict[str, Any] = orjson.loads(message.data)
        self.frames.append(frame)
        return frame

    async def response(self, frame_id: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """Return the next response (with `frame_id` if given), skipping events."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next_frame(timeout)
                if frame is None:
                    raise AssertionError(f"socket closed ({self.ws.close_code}) before a response")
                if frame["type"] == "res" and (frame_id is None or frame["id"] == frame_id):
                    return frame

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Read until the socket closes and return the close code."""
        async with asyncio.timeout(timeout):
            while await self.next_frame(timeout) is not None:
                pass
        return self.ws.close_code

    async def authenticate(self, token: str | None, **overrides: Any) -> dict[str, Any]:
        """Send a valid connect and return the hello-ok payload."""
        await self.send(request("connect", connect_params(token, **overrides), "connect"))
        answer = await self.response("connect")
        assert answer["ok"], answer
        hello: dict[str, Any] = answer["payload"]
        return hello


async def open_peer(session: aiohttp.ClientSession, url: str, **headers: str) -> RawPeer:
    """Open a socket and read the challenge."""
    ws = await session.ws_connect(url, autoclose=False, max_msg_size=0, headers=headers)
    challenge = orjson.loads((await ws.receive(timeout=5)).data)
    assert challenge["event"] == "connect.challenge"
    return RawPeer(ws, challenge)


def signed_connect_params(
    identity: Any,
    challenge: dict[str, Any],
    *,
    token: str | None = None,
    device_token: str | None = None,
    scopes: tuple[str, ...] = ("operator.read",),
    role: str = "operator",
    client: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ConnectParams carrying a device block signed over this socket's challenge."""
    from clawgate.protocol.device_auth import SignedFields, build_payload_v3

    client = client or {"id": "test", "version": "1.0", "platform": "linux", "mode": "test"}
    nonce = challenge["payload"]["nonce"]
    signed_at = challenge["payload"]["ts"]
    auth: dict[str, Any] = {}
    if token is not None:
        auth["token"] = token
    if device_token is not None:
        auth["deviceToken"] = device_token
    fields = SignedFields(
        device_id=identity.device_id,
        client_id=client["id"],
        client_mode=client["mode"],
        role=role,
        scopes=scopes,
        signed_at_ms=signed_at,
        token=token if token is not None else device_token,
        nonce=nonce,
        platform=client.get("platform"),
        device_family=client.get("deviceFamily"),
    )
    params: dict[str, Any] = {
        "minProtocol": 3,
        "maxProtocol": 4,
        "client": client,
        "role": role,
        "scopes": list(scopes),
        "device": {
            "id": identity.device_id,
            "publicKey": identity.public_key_b64url,
            "signature": identity.sign(build_payload_v3(fields)),
            "signedAt": signed_at,
            "nonce": nonce,
        },
    }
    if auth:
        params["auth"] = auth
    return params
