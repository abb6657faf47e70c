"""Chaos, bounded: three hub processes lose an instance, NATS and PostgreSQL mid-stream.

Sized for the test suite (60 daemons, 600 commands); ``bench/hub_cluster.py --chaos`` runs
the issue's 300 daemons and 3,000 commands. Every command must end with exactly one terminal
ack, none may execute twice, none may be lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub_cluster import run_chaos
from tests.servers import NatsServer, PostgresServer

pytestmark = pytest.mark.slow


async def test_no_command_is_lost_or_run_twice_through_instance_bus_and_database_faults(
    pg_server: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> None:
    lines = await run_chaos(
        pg_server, nats_server, tmp_path, daemons=60, commands=600, rate=60.0, settle_s=60.0
    )
    for line in lines:
        assert line.lost == 0, line.render()
        assert line.duplicates == 0, line.render()
        assert line.acked == line.sent == line.executed, line.render()
    for line in lines[1:]:
        assert line.recover_s < 60, line.render()
