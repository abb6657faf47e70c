"""The node host's login service: its own unit name, label, command line and log."""

from __future__ import annotations

import plistlib
from collections.abc import Sequence
from pathlib import Path

from clawgate.service.installer import CommandResult, ServiceInstaller
from clawgate.service.units import (
    NODE_SERVICE,
    ServiceSpec,
    render_launchd_plist,
    render_systemd_unit,
)


def spec(tmp_path: Path) -> ServiceSpec:
    return ServiceSpec(("/opt/cg/bin/clawgate",), tmp_path / "home", False, kind=NODE_SERVICE)


def test_systemd_unit_runs_node_run_and_holds_no_secret(tmp_path: Path) -> None:
    unit = render_systemd_unit(spec(tmp_path))
    assert "ExecStart=/opt/cg/bin/clawgate node run\n" in unit
    assert "Description=clawgate node host" in unit
    assert "`clawgate node install`" in unit and "token" not in unit.lower()


def test_launchd_agent_has_its_own_label_and_log(tmp_path: Path) -> None:
    agent = plistlib.loads(render_launchd_plist(spec(tmp_path)))
    assert agent["Label"] == "dev.clawgate.node"
    assert agent["ProgramArguments"] == ["/opt/cg/bin/clawgate", "node", "run"]
    assert agent["StandardOutPath"].endswith("home/node/logs/node.stdout.log")


def test_installer_enables_the_node_unit_beside_the_gateway_one(tmp_path: Path) -> None:
    calls: list[tuple[str, ...]] = []

    def runner(argv: Sequence[str]) -> CommandResult:
        calls.append(tuple(argv))
        return CommandResult(0, "running\n", "")

    installer = ServiceInstaller("linux", tmp_path, runner, 501, NODE_SERVICE)
    report = installer.install(spec(tmp_path))
    assert report.path == tmp_path / ".config/systemd/user/clawgate-node.service"
    assert ("systemctl", "--user", "enable", "--now", "clawgate-node.service") in calls
    installer.uninstall()
    assert ("systemctl", "--user", "disable", "--now", "clawgate-node.service") in calls
    assert not report.path.exists()
