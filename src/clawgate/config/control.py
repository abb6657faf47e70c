"""The control plane's tables: `[auth]`, `[cloud]`, `[ipc]`, `[queue]`, `[reconcile]`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from ..protocol.ipc.timeouts import DEFAULT_TIMEOUTS_S
from .section import Section

__all__ = [
    "ApiAuthSection",
    "CloudSection",
    "IpcSection",
    "QueueSection",
    "ReconcileSection",
]


class ApiAuthSection(Section):
    """`[auth]`: the credential of the control link (control-plane spec §1.2)."""

    api_key: str | None = Field(
        default=None,
        repr=False,
        description="the daemon key the control link sends to the hub (env CLAWGATE_API_KEY)",
    )


class CloudSection(Section):
    """`[cloud]`: the control link to a hub; absent means the link is off."""

    url: str | None = Field(
        default=None,
        description=(
            "the hub's daemon endpoint, e.g. wss://hub.example.com/v1/daemon "
            "(env CLAWGATE_CLOUD_URL)"
        ),
    )
    allow_insecure: bool = Field(
        default=False, description="allow ws:// to a hub that is not on loopback"
    )


class IpcSection(Section):
    """`[ipc]`: the plugin socket (control-plane spec §2.8)."""

    request_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0, description="daemon-to-plugin calls without a timeout of their own"
    )
    method_timeouts_s: dict[str, Annotated[float, Field(gt=0, le=3600)]] = Field(
        default_factory=dict,
        description=(
            "per-method overrides of the plugin request timeouts, e.g. "
            '{"integration.install" = 600}'
        ),
    )

    @model_validator(mode="after")
    def _known_methods(self) -> IpcSection:
        unknown = sorted(set(self.method_timeouts_s) - set(DEFAULT_TIMEOUTS_S))
        if unknown:
            raise ValueError(
                f"no timeout to override for {unknown[0]!r}; choose from "
                + ", ".join(sorted(DEFAULT_TIMEOUTS_S))
            )
        return self


class QueueSection(Section):
    """`[queue]`: the offline command queue (control-plane spec §4.3)."""

    ttl_s: Annotated[int, Field(ge=1, le=86_400)] = Field(
        default=300, description="how long a command waits for a plugin"
    )
    max_total: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1000, description="queued commands in all (more are rejected QUEUE_FULL)"
    )
    max_per_target: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=100, description="queued commands per capability / integration / plugin"
    )


class ReconcileSection(Section):
    """`[reconcile]`: the reconciliation engine (control-plane spec §5.8)."""

    drift_interval_s: Annotated[float, Field(ge=1, le=86_400)] = Field(
        default=600.0, description="how often live plugins' inventories are checked for drift"
    )
