"""What the inbound pipeline keeps while the gateway runs: nothing past its expiry."""

from __future__ import annotations

import sqlite3
import time

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.harness import channel_gateway
from tests.integration.channels.test_telegram import ALICE, telegram_table

BOB = 4343
HOUR_MS = 3_600_000


class Clock:
    """The gateway's wall clock, which a test moves forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return int(time.time() * 1000) + self.offset_ms


def _pairing_rows(gateway: RunningGateway) -> list[tuple[str, str]]:
    with sqlite3.connect(gateway.home / "state.db") as conn:
        rows = conn.execute("SELECT channel, sender_id FROM channel_pairing").fetchall()
    return [(str(channel), str(sender)) for channel, sender in rows]


async def _two_strangers(
    factory: GatewayFactory, telegram: FakeTelegram, apart_ms: int
) -> RunningGateway:
    """Alice, then `apart_ms` later on the gateway's clock Bob, each asks for a pairing code."""
    clock = Clock()
    gateway = await channel_gateway(factory, telegram_table(telegram), clock=clock)
    telegram.user_says("hello", user_id=ALICE)
    await telegram.wait_sent()
    clock.offset_ms += apart_ms
    telegram.user_says("hello", user_id=BOB)
    await telegram.wait_sent(count=2)
    return gateway


async def test_expired_pairing_codes_are_dropped_while_the_gateway_runs(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    gateway = await _two_strangers(gateway_factory, telegram, 2 * HOUR_MS)  # 1 h past expiry
    assert _pairing_rows(gateway) == [("telegram", str(BOB))]


def _inbound_records(gateway: RunningGateway) -> int:
    with sqlite3.connect(gateway.home / "state.db") as conn:
        return int(conn.execute("SELECT count(*) FROM channel_inbound").fetchone()[0])


async def test_old_dedupe_records_are_forgotten_while_the_gateway_runs(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    # Past the 7 days a dedupe record is kept: only Bob's message is remembered.
    gateway = await _two_strangers(gateway_factory, telegram, 8 * 24 * HOUR_MS)
    assert _inbound_records(gateway) == 1
