"""`clawgate doctor`: check the install, the home and the running gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import ClawgateConfig
from ..service.paths import HomeError, Paths, resolve_home
from ._common import ProbeFailed, ask_gateway, console, fail, print_json
from .install import installer_for_this_user, service_spec

if TYPE_CHECKING:
    from ..service.doctor import CheckResult, DoctorProbes

__all__ = ["doctor"]

# By status value: the checks (and the unit installer they use) load only when run.
_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def _gateway_health(url: str, config: ClawgateConfig, pin: str | None) -> str | None:
    """Return None when the gateway answers `health`, else what went wrong."""
    try:
        ask_gateway(config, pin, lambda client: client.call("health", timeout=3), scopes=())
    except ProbeFailed as exc:
        return f"does not answer health: {exc}"
    return None


def _link_status(url: str, config: ClawgateConfig, pin: str | None) -> dict[str, Any] | None:
    """Return the running gateway's `cloud.status`, or None when it cannot be asked."""
    try:
        return dict(ask_gateway(config, pin, lambda c: c.call("cloud.status", timeout=3)))
    except ProbeFailed:
        return None


def real_probes() -> DoctorProbes:
    """Probe the real machine."""
    from ..service.doctor import DoctorProbes

    return DoctorProbes(
        installed_unit=lambda: installer_for_this_user().installed_unit(),
        expected_service=service_spec,
        gateway_health=_gateway_health,
        link_status=_link_status,
    )


def _render(results: list[CheckResult]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="clawgate doctor", show_header=True)
    table.add_column("check")
    table.add_column("status")
    table.add_column("finding")
    table.add_column("fix")
    for result in results:
        style = _STYLE[result.status.value]
        table.add_row(
            result.name,
            f"[{style}]{result.status.value}[/]",
            escape(result.message),  # findings name config tables like [cloud]
            escape(result.fix),
        )
    console.print(table)


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run every check; exit 1 when any fails."""
    from ..service.doctor import Status, run_checks

    try:
        paths = Paths(resolve_home())
    except HomeError as exc:
        fail(str(exc), 2)
    results = run_checks(paths, real_probes())
    if json_output:
        print_json(
            [
                {"name": r.name, "status": r.status.value, "message": r.message, "fix": r.fix}
                for r in results
            ],
            compact=True,
        )
    else:
        _render(results)
    if any(result.status is Status.FAIL for result in results):
        raise typer.Exit(1)
