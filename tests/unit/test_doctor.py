"""Each doctor check catches the fault seeded for it."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawgate.service.doctor import DoctorProbes, Status, run_checks
from clawgate.service.installer import InstalledUnit, ServiceManager
from clawgate.service.paths import Paths
from clawgate.service.units import ServiceSpec, render_systemd_unit


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[gateway]\nport = 18789\n")
    (home / "config.toml").chmod(0o600)
    return Paths(home)


def results(paths: Paths, probes: DoctorProbes | None = None) -> dict[str, tuple[Status, str]]:
    return {
        r.name: (r.status, r.message)
        for r in run_checks(
            paths,
            probes
            or DoctorProbes(port_holder=lambda port: None, http_ok=lambda url, context: False),
        )
    }


def test_a_healthy_home_has_no_failures(paths: Paths) -> None:
    found = results(paths)
    assert all(status is not Status.FAIL for status, _ in found.values()), found


def test_old_python(paths: Paths) -> None:
    probes = DoctorProbes(
        python_version=(3, 9), port_holder=lambda p: None, http_ok=lambda u, c: False
    )
    assert results(paths, probes)["python"][0] is Status.FAIL


def test_invalid_config_names_the_key(paths: Paths) -> None:
    (paths.config).write_text("[gateway]\nbogus = 1\n")
    status, message = results(paths)["config"]
    assert status is Status.FAIL and "unknown key 'gateway.bogus'" in message


def test_loose_permissions(paths: Paths) -> None:
    paths.home.chmod(0o755)
    status, message = results(paths)["permissions"]
    assert status is Status.FAIL and "0o755" in message
    paths.home.chmod(0o700)
    paths.config.chmod(0o644)
    assert results(paths)["permissions"][0] is Status.FAIL


def test_stale_pid_file(paths: Paths) -> None:
    paths.pid_file.write_text("999999\n")
    status, message = results(paths)["pid file"]
    assert status is Status.WARN and "999999" in message


def test_running_gateway_is_seen_through_the_lock(paths: Paths) -> None:
    fd = os.open(paths.pid_file, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        status, message = results(paths)["pid file"]
        assert status is Status.OK and "4242" in message
    finally:
        os.close(fd)


def test_port_held_by_someone_else(paths: Paths) -> None:
    probes = DoctorProbes(port_holder=lambda port: "pid 7 (nginx)", http_ok=lambda u, c: False)
    status, message = results(paths, probes)["port"]
    assert status is Status.FAIL and "nginx" in message


@pytest.fixture
def unix_socket(paths: Paths) -> Iterator[Path]:
    path = paths.home / "gateway.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    try:
        yield path
    finally:
        server.close()


def test_ipc_socket_mode(paths: Paths, unix_socket: Path) -> None:
    unix_socket.chmod(0o666)
    assert results(paths)["ipc socket"][0] is Status.FAIL
    unix_socket.chmod(0o600)
    assert results(paths)["ipc socket"][0] is Status.OK


def test_ipc_path_that_is_not_a_socket(paths: Paths) -> None:
    (paths.home / "gateway.sock").write_text("")
    assert results(paths)["ipc socket"][0] is Status.FAIL


def test_corrupt_state_db(paths: Paths) -> None:
    paths.state_db.write_bytes(b"this is not a database" * 100)
    paths.state_db.chmod(0o600)
    assert results(paths)["state.db"][0] is Status.FAIL


def test_low_disk(paths: Paths) -> None:
    probes = DoctorProbes(
        free_bytes=lambda p: 10, port_holder=lambda p: None, http_ok=lambda u, c: False
    )
    assert results(paths, probes)["disk"][0] is Status.FAIL
    probes.free_bytes = lambda p: 100 * 1024 * 1024
    assert results(paths, probes)["disk"][0] is Status.WARN


def test_service_unit_for_another_install(paths: Paths, tmp_path: Path) -> None:
    mine = ServiceSpec(("/opt/mine/bin/clawgate",), paths.home, home_is_default=False)
    theirs = ServiceSpec(("/opt/other/bin/clawgate",), paths.home, home_is_default=False)
    unit = InstalledUnit(ServiceManager.SYSTEMD, tmp_path / "u", render_systemd_unit(theirs))
    probes = DoctorProbes(
        installed_unit=lambda: unit,
        expected_service=lambda: mine,
        port_holder=lambda p: None,
        http_ok=lambda u, c: False,
    )
    assert results(paths, probes)["service"][0] is Status.WARN
    probes.expected_service = lambda: theirs
    assert results(paths, probes)["service"][0] is Status.OK


def test_an_old_simple_unit_is_told_to_install_again(paths: Paths, tmp_path: Path) -> None:
    program = ("/opt/mine/bin/clawgate",)
    old = ServiceSpec(program, paths.home, home_is_default=False)
    new = ServiceSpec(program, paths.home, home_is_default=False, unit_type="notify")
    unit = InstalledUnit(ServiceManager.SYSTEMD, tmp_path / "u", render_systemd_unit(old))
    probes = DoctorProbes(
        installed_unit=lambda: unit,
        expected_service=lambda: new,
        port_holder=lambda p: None,
        http_ok=lambda u, c: False,
    )
    (check,) = [r for r in run_checks(paths, probes) if r.name == "service"]
    assert check.status is Status.WARN and "old Type=simple unit" in check.message
    assert check.fix == "run clawgate gateway install again"
    probes.installed_unit = lambda: InstalledUnit(
        ServiceManager.SYSTEMD, tmp_path / "u", render_systemd_unit(new)
    )
    assert results(paths, probes)["service"][0] is Status.OK


def test_gateway_that_does_not_answer(paths: Paths) -> None:
    probes = DoctorProbes(
        http_ok=lambda url, context: True,
        gateway_health=lambda url, config, pin: "does not answer health: refused",
        port_holder=lambda p: None,
    )
    assert results(paths, probes)["gateway"][0] is Status.FAIL
    probes.gateway_health = lambda url, config, pin: None
    assert results(paths, probes)["gateway"][0] is Status.OK


def test_unreachable_cloud(paths: Paths) -> None:
    paths.config.write_text(
        '[cloud]\nurl = "wss://hub.invalid/v1/daemon"\n[auth]\napi_key = "cgk_x"\n'
    )
    probes = DoctorProbes(
        tcp_reachable=lambda host, port: False,
        port_holder=lambda p: None,
        http_ok=lambda u, c: False,
    )
    status, message = results(paths, probes)["cloud link"]
    assert status is Status.FAIL and "hub.invalid:443" in message


@pytest.mark.parametrize(
    ("link", "status", "words"),
    [
        ({"state": "connected", "since": "2026-11-24T00:00:00.000Z"}, Status.OK, "connected since"),
        ({"state": "login_required", "lastError": "refused"}, Status.FAIL, "login required"),
        ({"state": "backoff", "lastError": "cannot reach the hub"}, Status.WARN, "cannot reach"),
    ],
)
def test_cloud_link_state_of_the_running_gateway(
    paths: Paths, link: dict[str, str], status: Status, words: str
) -> None:
    paths.config.write_text(
        '[cloud]\nurl = "ws://127.0.0.1:18800/v1/daemon"\n[auth]\napi_key = "cgk_x"\n'
    )
    probes = DoctorProbes(
        port_holder=lambda p: None,
        http_ok=lambda u, c: False,
        link_status=lambda url, config, pin: link,
    )
    found, message = results(paths, probes)["cloud link"]
    assert found is status and words in message


def test_cloud_url_without_a_key(paths: Paths) -> None:
    paths.config.write_text('[cloud]\nurl = "wss://hub.example/v1/daemon"\n')
    status, message = results(paths)["cloud link"]
    assert status is Status.FAIL and "no api key" in message


def _with_telegram(paths: Paths, extra: str = "") -> None:
    (paths.home / "config.toml").write_text(
        '[gateway]\nport = 18789\n[channels.telegram]\napi_base = "http://127.0.0.1:9"\n' + extra
    )


def _probes(**overrides: object) -> DoctorProbes:
    return DoctorProbes(
        port_holder=lambda port: None,
        http_ok=lambda url, context: False,
        **overrides,  # type: ignore[arg-type]
    )


def test_no_channel_skips_the_channel_check(paths: Paths) -> None:
    assert results(paths)["channels"][0] is Status.SKIP


def test_a_channel_without_a_token_fails(paths: Paths) -> None:
    _with_telegram(paths)
    status, message = results(paths, _probes())["channel telegram/default"]
    assert status is Status.FAIL and "no credential" in message


def test_a_channel_whose_extra_is_missing_names_it(paths: Paths) -> None:
    _with_telegram(paths, 'token = "1:a"\n')
    found = run_checks(paths, _probes(module_available=lambda name: False))
    [check] = [r for r in found if r.name == "channel telegram/default"]
    assert check.status is Status.FAIL and "clawgate[telegram]" in check.fix


def test_a_refused_channel_token_fails_and_an_accepted_one_passes(paths: Paths) -> None:
    _with_telegram(paths, 'token = "1:a"\n')
    refused = _probes(channel_problem=lambda channel, options, secret: "401 Unauthorized")
    assert results(paths, refused)["channel telegram/default"][0] is Status.FAIL
    accepted = _probes(channel_problem=lambda channel, options, secret: None)
    assert results(paths, accepted)["channel telegram/default"][0] is Status.OK
