"""`clawgate gateway|hub install` / `uninstall`: start the gateway or the hub at login.

Plain functions, registered as commands of the `gateway` and `hub` typer apps elsewhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import PASSWORD_ENV, TOKEN_ENV
from ..hub.settings import ENV_ADMIN_TOKEN
from ..service.paths import HomeError, resolve_home
from ._common import fail

if TYPE_CHECKING:
    from ..service.installer import InstallReport, ServiceInstaller
    from ..service.units import ServiceKind, ServiceSpec

__all__ = [
    "hub_install",
    "hub_uninstall",
    "install",
    "installer_for_this_user",
    "service_spec",
    "uninstall",
]

# The installer and unit modules load inside the commands: `gateway run` never needs them.

DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the unit file and what would be done; change nothing."),
]


def _kind(hub: bool) -> ServiceKind:
    from ..service.units import GATEWAY_SERVICE, HUB_SERVICE

    return HUB_SERVICE if hub else GATEWAY_SERVICE


def installer_for_this_user(*, hub: bool = False) -> ServiceInstaller:
    """Return an installer for this machine, this user and real `systemctl`/`launchctl`."""
    from ..service.installer import ServiceInstaller, subprocess_runner

    uid = os.getuid() if hasattr(os, "getuid") else -1
    return ServiceInstaller(sys.platform, Path.home(), subprocess_runner, uid, _kind(hub))


def service_spec(*, hub: bool = False) -> ServiceSpec:
    """Describe the service for this installation and the current clawgate home."""
    from ..service.units import ServiceSpec, default_program

    try:
        home = resolve_home()
        # resolve_home without an environment is the default home, `~/.clawgate`.
        return ServiceSpec(
            default_program(),
            home,
            home_is_default=home == resolve_home({}),
            # the gateway sends READY=1, WATCHDOG=1, STOPPING=1; the hub does not
            unit_type="simple" if hub else "notify",
            kind=_kind(hub),
        )
    except (HomeError, ValueError) as exc:
        fail(str(exc), 2)


def _print(report: InstallReport) -> None:
    """Print a report: on a dry run the file alone goes to stdout, so it can be redirected."""
    if report.dry_run:
        sys.stdout.write(report.content)
        sys.stdout.flush()
        for line in report.lines:
            print(line, file=sys.stderr)
        return
    for line in report.lines:
        print(line)


def _install(dry_run: bool, *, hub: bool) -> None:
    from ..service.installer import ServiceError

    spec = service_spec(hub=hub)
    try:
        report = installer_for_this_user(hub=hub).install(spec, dry_run=dry_run)
    except ServiceError as exc:
        fail(str(exc), 2)
    _print(report)
    # The unit deliberately carries no secrets, so the service cannot see these variables.
    names = (ENV_ADMIN_TOKEN,) if hub else (TOKEN_ENV, PASSWORD_ENV)
    unseen = [name for name in names if os.environ.get(name)]
    if unseen:
        print(
            f"note: {', '.join(unseen)} is set here but not passed to the service; "
            f"keep the credential in {spec.home / spec.kind.secrets_file} instead",
            file=sys.stderr,
        )


def _uninstall(dry_run: bool, *, hub: bool) -> None:
    from ..service.installer import ServiceError

    try:
        report = installer_for_this_user(hub=hub).uninstall(dry_run=dry_run)
    except ServiceError as exc:
        fail(str(exc), 2)
    _print(report)


def install(dry_run: DryRun = False) -> None:
    """Install the gateway as a login service (systemd user unit or launchd agent)."""
    _install(dry_run, hub=False)


def uninstall(dry_run: DryRun = False) -> None:
    """Stop the gateway's login service and remove its unit file."""
    _uninstall(dry_run, hub=False)


def hub_install(dry_run: DryRun = False) -> None:
    """Install the hub as a login service (systemd user unit or launchd agent)."""
    _install(dry_run, hub=True)


def hub_uninstall(dry_run: DryRun = False) -> None:
    """Stop the hub's login service and remove its unit file."""
    _uninstall(dry_run, hub=True)
