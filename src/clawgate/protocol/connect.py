"""ConnectParams and protocol negotiation (spec §3.2, §3.3)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .detail_codes import PROTOCOL_MISMATCH
from .errors import InvalidRequest
from .limits import PROTOCOL_MAX, PROTOCOL_MIN

__all__ = [
    "AuthParams",
    "ClientId",
    "ClientInfo",
    "ClientMode",
    "ConnectParams",
    "DeviceParams",
    "ProtocolMismatch",
    "negotiate_protocol",
]

ClientId = Literal[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
    "openclaw-browser-copilot",
]
ClientMode = Literal["webchat", "cli", "ui", "backend", "node", "worker", "probe", "test"]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ClientInfo(_Closed):
    """Who the client says it is."""

    id: ClientId
    version: NonEmpty
    platform: NonEmpty
    mode: ClientMode
    displayName: str | None = None
    deviceFamily: str | None = None
    modelIdentifier: str | None = None
    instanceId: str | None = None
    buildId: str | None = None
    timeZone: str | None = None


class AuthParams(_Closed):
    """Credentials offered at connect."""

    # Out of repr: a logged or failing ConnectParams must not show a credential.
    token: str | None = Field(default=None, repr=False)
    password: str | None = Field(default=None, repr=False)
    deviceToken: str | None = Field(default=None, repr=False)
    bootstrapToken: str | None = Field(default=None, repr=False)
    approvalRuntimeToken: str | None = None
    agentRuntimeIdentityToken: str | None = None


class DeviceParams(_Closed):
    """A signed device identity (spec §4)."""

    id: str
    publicKey: str
    signature: str
    signedAt: int
    nonce: str


class ConnectParams(_Closed):
    """Params of `connect`: the union of the protocol 3 and 4 fields."""

    minProtocol: Annotated[int, Field(ge=1)]
    maxProtocol: Annotated[int, Field(ge=1)]
    client: ClientInfo
    role: str = "operator"
    scopes: list[str] = Field(default_factory=list)
    caps: list[str] | None = None
    commands: list[str] | None = None
    permissions: dict[str, bool] | None = None
    pathEnv: str | None = None
    auth: AuthParams | None = None
    device: DeviceParams | None = None
    locale: str | None = None
    userAgent: str | None = None
    modelCatalog: Any = None


class ProtocolMismatch(InvalidRequest):
    """The client's protocol range does not overlap 3..4."""

    def __init__(self, client_min: int, client_max: int) -> None:
        super().__init__(
            "protocol mismatch",
            details={
                "code": PROTOCOL_MISMATCH,
                "clientMinProtocol": client_min,
                "clientMaxProtocol": client_max,
                "expectedProtocol": PROTOCOL_MAX,
                "minimumProbeProtocol": PROTOCOL_MIN,
            },
        )


def negotiate_protocol(client_min: int, client_max: int) -> int:
    """Return the highest protocol both sides speak.

    Raises:
        ProtocolMismatch: the ranges do not overlap.
    """
    low = max(client_min, PROTOCOL_MIN)
    high = min(client_max, PROTOCOL_MAX)
    if low > high:
        raise ProtocolMismatch(client_min, client_max)
    return high
