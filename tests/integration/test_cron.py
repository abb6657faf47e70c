"""Cron over the wire: jobs, runs, events, time zones, DST, downtime, overlap, backoff.

Time is a `FakeClock` wherever it matters: the gateway reads it, the test moves it and
calls `fire_due()` (the scheduler's timer is off in those tests, `cron_enabled=False`), so
nothing sleeps for the minutes and days a schedule spans.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clawgate.client import GatewayCallError
from clawgate.config import AgentSection
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.clock import FakeClock
from tests.integration.conftest import Peer, PeerFactory

BERLIN = "Europe/Berlin"
MINUTE = 60_000
HOUR = 60 * MINUTE
TURN = {"kind": "agentTurn", "message": "summarise my inbox"}
EVENT = {"kind": "systemEvent", "text": "stand up"}


async def start(
    factory: GatewayFactory, clock: FakeClock | None = None, **agent: Any
) -> RunningGateway:
    """A gateway in Berlin with an instant echo agent; with a clock, its timer is off."""
    settings: dict[str, Any] = {
        "timezone": BERLIN,
        "agent": AgentSection(**{"echo_delay_ms": 0, **agent}),
    }
    if clock is not None:
        settings["cron_enabled"] = False
    return await factory(clock=clock, **settings)


async def admin(clients: PeerFactory, gateway: RunningGateway) -> Peer:
    return await clients(gateway, scopes=["operator.admin"])


async def fire(gateway: RunningGateway) -> None:
    """Let the scheduler fire what the fake clock says is due."""
    cron = gateway.server.cron
    assert cron is not None and cron.service is not None
    await cron.service.fire_due()


async def add(peer: Peer, every_ms: int = HOUR, payload: Any = None, **fields: Any) -> Any:
    """Add an `every` job (hourly, an agent turn, unless told otherwise) and return it."""
    schedule = {"kind": "every", "everyMs": every_ms}
    params = {"schedule": schedule, "payload": payload or TURN, **fields}
    return await peer.client.call("cron.add", params)


async def cron_event(peer: Peer, action: str, timeout: float = 10.0) -> dict[str, Any]:
    while True:
        event = await peer.next_event("cron", timeout)
        if event.payload["action"] == action:
            return event.payload


async def finished(peer: Peer, count: int = 1) -> list[dict[str, Any]]:
    return [await cron_event(peer, "finished") for _ in range(count)]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- adding, listing, changing --------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        {"kind": "every", "everyMs": 30 * MINUTE},
        {"kind": "at", "atMs": ms(at(2026, 12, 24, 17))},
        {"kind": "cron", "expr": "0 8 * * 1-5", "tz": "America/New_York"},
        {"kind": "cron", "expr": "30 0 8 * * *"},
    ],
)
async def test_add_answers_the_job_with_its_next_run_strictly_in_the_future(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, schedule: dict[str, Any]
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    job = await peer.client.call(
        "cron.add", {"name": "inbox", "schedule": schedule, "payload": TURN}
    )
    assert job["state"]["nextRunAtMs"] > clock()
    assert (
        job["enabled"] is True and job["sessionTarget"] == "isolated" and job["wakeMode"] == "now"
    )
    assert job["deleteAfterRun"] is False and job["catchUp"] == "once"
    listed = await peer.client.call("cron.list")
    assert listed["jobs"] == [job]


async def test_a_cron_job_without_a_zone_gets_the_gateway_zone(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    schedule = {"kind": "cron", "expr": "0 8 * * *"}
    job = await peer.client.call("cron.add", {"schedule": schedule, "payload": TURN})
    assert job["schedule"]["tz"] == BERLIN
    assert job["state"]["nextRunAtMs"] == ms(at(2026, 6, 2, 6))  # 08:00 CEST


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ({"kind": "cron", "expr": "0 8 * *"}, "has 4 fields; write 5"),
        ({"kind": "cron", "expr": "0 24 * * *"}, "'0 24 * * *' is not valid"),
        ({"kind": "cron", "expr": "0 8 * * *", "tz": "Europe/Atlantis"}, "unknown time zone"),
        ({"kind": "at", "atMs": 1}, "is in the past; give a future time"),
        ({"kind": "every", "everyMs": 5}, "everyMs"),
    ],
)
async def test_a_bad_schedule_is_invalid_request_saying_what_is_wrong(
    gateway: RunningGateway, client_factory: PeerFactory, schedule: dict[str, Any], says: str
) -> None:
    peer = await admin(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("cron.add", {"schedule": schedule, "payload": TURN})
    assert caught.value.code == "INVALID_REQUEST"
    assert says in caught.value.message
    assert (await peer.client.call("cron.list"))["jobs"] == []


async def test_delivery_to_an_unlinked_channel_is_refused_at_add(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin(client_factory, gateway)
    payload = {**TURN, "deliver": True, "channel": "telegram", "to": "42"}
    with pytest.raises(GatewayCallError, match="channel 'telegram': it is not linked"):
        await add(peer, payload=payload)


async def test_every_change_is_announced_as_a_cron_event(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    added = await cron_event(peer, "added")
    assert added == {
        "jobId": job["id"],
        "action": "added",
        "nextRunAtMs": job["state"]["nextRunAtMs"],
    }
    await peer.client.call("cron.update", {"jobId": job["id"], "patch": {"name": "renamed"}})
    assert (await cron_event(peer, "updated"))["jobId"] == job["id"]
    assert await peer.client.call("cron.remove", {"id": job["id"]}) == {"ok": True, "removed": True}
    assert (await cron_event(peer, "removed"))["jobId"] == job["id"]
    assert await peer.client.call("cron.remove", {"id": job["id"]}) == {
        "ok": True,
        "removed": False,
    }


async def test_disabling_hides_the_job_and_its_next_run_enabling_counts_from_now(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    schedule = {"kind": "every", "everyMs": HOUR}
    job = await peer.client.call("cron.add", {"schedule": schedule, "payload": TURN})
    off = await peer.client.call("cron.update", {"id": job["id"], "patch": {"enabled": False}})
    assert off["enabled"] is False and "nextRunAtMs" not in off["state"]
    assert (await peer.client.call("cron.list"))["jobs"] == []
    assert len((await peer.client.call("cron.list", {"includeDisabled": True}))["jobs"]) == 1
    clock.advance(5 * HOUR)
    await fire(gateway)  # nothing runs for the hours it was off
    on = await peer.client.call("cron.update", {"id": job["id"], "patch": {"enabled": True}})
    assert on["state"]["nextRunAtMs"] > clock()
    runs = await peer.client.call("cron.runs", {"id": job["id"]})
    assert runs["entries"] == []


async def test_status_counts_jobs_and_says_when_the_scheduler_wakes(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin(client_factory, gateway)
    assert await peer.client.call("cron.status") == {
        "enabled": True,
        "jobs": 0,
        "nextWakeAtMs": None,
        "timezone": gateway.server.settings.timezone,
    }
    job = await add(peer)
    status = await peer.client.call("cron.status")
    assert status["jobs"] == 1 and status["nextWakeAtMs"] == job["state"]["nextRunAtMs"]


async def test_the_scheduler_is_built_only_once_a_job_exists(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory)
    host = gateway.server.cron
    assert host is not None and host.service is None  # nothing loaded for a gateway without jobs
    peer = await admin(client_factory, gateway)
    assert (await peer.client.call("cron.list"))["jobs"] == []
    assert (await peer.client.call("cron.status"))["jobs"] == 0
    assert host.service is None
    await add(peer)
    assert host.service is not None
    await peer.client.close()
    await gateway.restart()
    restarted = gateway.server.cron
    assert restarted is not None and restarted.service is not None  # state.db has a job


async def test_unknown_job_ids_are_invalid_requests_with_a_detail_code(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin(client_factory, gateway)
    for method, params in (
        ("cron.update", {"id": "nope", "patch": {"enabled": False}}),
        ("cron.run", {"id": "nope"}),
        ("cron.runs", {"jobId": "nope"}),
    ):
        with pytest.raises(GatewayCallError) as caught:
            await peer.client.call(method, params)
        assert caught.value.code == "INVALID_REQUEST"
        assert caught.value.details == {"code": "UNKNOWN_CRON_JOB", "jobId": "nope"}


async def test_a_read_only_operator_can_list_but_not_add(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    reader = await client_factory(gateway, scopes=["operator.read"])
    assert (await reader.client.call("cron.list"))["jobs"] == []
    with pytest.raises(GatewayCallError, match=r"missing scope: operator\.admin"):
        await reader.client.call(
            "cron.add", {"schedule": {"kind": "every", "everyMs": HOUR}, "payload": TURN}
        )


# -- running ---------------------------------------------------------------------------------


async def test_an_isolated_job_runs_in_its_own_session_and_delivers_to_webchat(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    payload = {**TURN, "deliver": True}
    job = await add(peer, payload=payload, name="inbox")
    clock.advance(HOUR)
    await fire(gateway)
    started = await cron_event(peer, "started")
    (end,) = await finished(peer)
    session = f"agent:main:cron:{job['id']}"
    assert end["status"] == "ok" and end["summary"] == "summarise my inbox"
    assert end["sessionKey"] == session and end["runId"] == started["runId"]
    assert end["nextRunAtMs"] == job["state"]["nextRunAtMs"] + HOUR
    main = await peer.client.call("chat.history", {"sessionKey": "main"})
    assert [m["content"][0]["text"] for m in main["messages"]] == ["summarise my inbox"]
    own = await peer.client.call("chat.history", {"sessionKey": session})
    assert [m["role"] for m in own["messages"]] == ["user", "assistant"]
    (entry,) = (await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]
    assert entry["status"] == "ok" and entry["trigger"] == "schedule"
    assert entry["scheduledAtMs"] == job["state"]["nextRunAtMs"] and "late" not in entry


async def test_each_isolated_run_starts_a_fresh_transcript(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory)
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    for _ in range(2):
        await peer.client.call("cron.run", {"id": job["id"]})
        await finished(peer)
    own = await peer.client.call("chat.history", {"sessionKey": f"cron:{job['id']}"})
    assert len(own["messages"]) == 2


async def test_a_main_session_job_queues_a_system_event_and_wakes_the_heartbeat(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory)
    peer = await admin(client_factory, gateway)
    job = await add(peer, payload=EVENT)
    assert job["sessionTarget"] == "main"
    await peer.client.call("cron.run", {"id": job["id"]})
    (end,) = await finished(peer)
    assert end["status"] == "ok" and "woke the heartbeat" in end["summary"]
    beat = await peer.next_event("heartbeat")
    assert (
        beat.payload["status"] == "sent"
        and "- stand up"
        in beat.payload["preview"]
        + (await peer.client.call("chat.history", {"sessionKey": "main"}))["messages"][-1][
            "content"
        ][0]["text"]
    )
    assert (await peer.client.call("status"))["queuedSystemEvents"] == []


async def test_a_next_heartbeat_job_only_queues_its_event(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory)
    peer = await admin(client_factory, gateway)
    job = await add(peer, payload=EVENT, wakeMode="next-heartbeat")
    await peer.client.call("cron.run", {"id": job["id"]})
    await finished(peer)
    queued = (await peer.client.call("status"))["queuedSystemEvents"]
    assert [event["text"] for event in queued] == ["stand up"]
    assert await peer.client.call("last-heartbeat") is None


async def test_an_at_job_runs_once_and_delete_after_run_removes_it(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 12, 24, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    when = ms(at(2026, 12, 24, 17))
    job = await peer.client.call(
        "cron.add",
        {"schedule": {"kind": "at", "atMs": when}, "payload": TURN, "deleteAfterRun": True},
    )
    clock.set(at(2026, 12, 24, 17, 0, 1))
    await fire(gateway)
    (end,) = await finished(peer)
    assert end["status"] == "ok" and "nextRunAtMs" not in end
    assert (await cron_event(peer, "removed"))["jobId"] == job["id"]
    assert (await peer.client.call("cron.list", {"includeDisabled": True}))["jobs"] == []
    # The removed job's runs still answer.
    runs = await peer.client.call("cron.runs", {"id": job["id"]})
    assert [entry["status"] for entry in runs["entries"]] == ["ok"]


async def test_runs_of_a_removed_job_answer_for_seven_days(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    await peer.client.call("cron.run", {"id": job["id"]})
    await finished(peer)
    await peer.client.call("cron.remove", {"id": job["id"]})
    clock.advance(6 * 24 * HOUR)
    assert len((await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]) == 1
    clock.advance(2 * 24 * HOUR)
    with pytest.raises(GatewayCallError, match="unknown cron job"):
        await peer.client.call("cron.runs", {"id": job["id"]})


async def test_cron_run_with_an_idempotency_key_queues_one_run(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    params = {"id": job["id"], "idempotencyKey": "run-once"}
    first, second = await asyncio.gather(
        peer.client.call("cron.run", params), peer.client.call("cron.run", params)
    )
    assert first == second and first["ran"] is True
    await finished(peer)
    await asyncio.sleep(0.2)
    runs = await peer.client.call("cron.runs", {"id": job["id"]})
    assert [entry["runId"] for entry in runs["entries"]] == [first["runId"]]


async def test_run_in_due_mode_runs_only_a_due_job(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    not_yet = await peer.client.call("cron.run", {"id": job["id"], "mode": "due"})
    assert not_yet == {"ok": True, "ran": False, "reason": "not-due"}
    clock.advance(HOUR)
    due = await peer.client.call("cron.run", {"id": job["id"], "mode": "due"})
    assert due["ran"] is True
    (end,) = await finished(peer)
    assert end["nextRunAtMs"] == job["state"]["nextRunAtMs"] + HOUR


async def test_a_job_still_running_when_due_again_is_skipped_and_recorded(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock, echo_delay_ms=100)
    peer = await admin(client_factory, gateway)
    slow = {"kind": "agentTurn", "message": " ".join(["word"] * 30)}
    job = await add(peer, MINUTE, payload=slow)
    clock.advance(MINUTE)
    await fire(gateway)
    await cron_event(peer, "started")
    clock.advance(MINUTE)
    await fire(gateway)
    skipped = await cron_event(peer, "finished")
    assert skipped["status"] == "skipped"
    assert skipped["error"] == "the previous run is still running (overlap skip)"
    ended = await cron_event(peer, "finished")
    assert ended["status"] == "ok"
    statuses = [
        e["status"] for e in (await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]
    ]
    assert sorted(statuses) == ["ok", "skipped"]


async def test_overlap_queue_runs_the_waiting_run_after_the_first(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock, echo_delay_ms=50)
    peer = await admin(client_factory, gateway)
    slow = {"kind": "agentTurn", "message": " ".join(["word"] * 10)}
    job = await add(peer, MINUTE, payload=slow, overlap="queue")
    for _ in range(3):
        clock.advance(MINUTE)
        await fire(gateway)
    ends = await finished(peer, 3)
    assert sorted(end["status"] for end in ends) == ["ok", "ok", "skipped"]
    assert (await peer.client.call("cron.list"))["jobs"][0]["id"] == job["id"]


async def test_a_failing_job_records_the_error_backs_off_and_stays_enabled(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    # Two words 1.5 s apart never finish within the 1 s timeout.
    gateway = await start(gateway_factory, clock, echo_delay_ms=1500)
    peer = await admin(client_factory, gateway)
    failing = {"kind": "agentTurn", "message": "too slow", "timeoutSeconds": 1}
    job = await add(peer, MINUTE, payload=failing)
    pauses = []
    for _ in range(3):
        due = (await peer.client.call("cron.list"))["jobs"][0]["state"]["nextRunAtMs"]
        clock.now_ms = due
        await fire(gateway)
        (end,) = await finished(peer)
        assert end["status"] == "error" and "did not finish within 1 s" in end["error"]
        pauses.append(end["nextRunAtMs"] - clock())
    state = (await peer.client.call("cron.list"))["jobs"][0]
    assert state["enabled"] is True and state["state"]["consecutiveErrors"] == 3
    assert state["state"]["lastStatus"] == "error"
    # 30 s, 1 min, 5 min, each rounded up to the schedule's next minute.
    assert pauses == [MINUTE, MINUTE, 5 * MINUTE]
    assert job["backoff"] == "exponential"


# -- time: DST, downtime, jumps --------------------------------------------------------------


async def test_a_0230_berlin_job_runs_once_at_0300_on_the_spring_forward_day(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 3, 28, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    job = await peer.client.call(
        "cron.add",
        {"schedule": {"kind": "cron", "expr": "30 2 * * *", "tz": BERLIN}, "payload": TURN},
    )
    assert job["state"]["nextRunAtMs"] == ms(at(2026, 3, 29, 1))  # 03:00 CEST
    for minute in range(0, 120, 10):  # the whole night, ten minutes at a time
        clock.set(at(2026, 3, 29) + timedelta(minutes=minute))
        await fire(gateway)
    (end,) = await finished(peer)
    assert end["runAtMs"] == ms(at(2026, 3, 29, 1))
    assert end["nextRunAtMs"] == ms(at(2026, 3, 30, 0, 30))  # 02:30 CEST the next day
    assert len((await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]) == 1


async def test_a_0130_new_york_job_runs_once_on_the_fall_back_day(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 10, 31, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    schedule = {"kind": "cron", "expr": "30 1 * * *", "tz": "America/New_York"}
    job = await peer.client.call("cron.add", {"schedule": schedule, "payload": TURN})
    # 2026-11-01 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    for hour, minute in ((5, 30), (6, 0), (6, 30), (7, 0)):
        clock.set(at(2026, 11, 1, hour, minute))
        await fire(gateway)
    (end,) = await finished(peer)
    assert end["runAtMs"] == ms(at(2026, 11, 1, 5, 30))
    assert end["nextRunAtMs"] == ms(at(2026, 11, 2, 6, 30))
    assert len((await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]) == 1


async def test_after_downtime_a_missed_run_catches_up_once_marked_late(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    await peer.client.close()
    await gateway.server.stop()
    clock.advance(5 * HOUR + 10 * MINUTE)  # five runs missed while it was down
    await gateway.restart()
    peer = await admin(client_factory, gateway)
    await fire(gateway)
    (end,) = await finished(peer)
    assert end["status"] == "ok"
    (entry,) = (await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]
    assert entry["late"] is True and entry["scheduledAtMs"] == job["state"]["nextRunAtMs"]
    assert entry["nextRunAtMs"] == job["state"]["nextRunAtMs"] + 5 * HOUR
    await fire(gateway)
    await asyncio.sleep(0.1)
    assert len((await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]) == 1


async def test_after_downtime_without_catch_up_the_missed_run_is_recorded_as_skipped(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    await add(peer, catchUp="none")
    await peer.client.close()
    await gateway.server.stop()
    clock.advance(3 * HOUR)
    await gateway.restart()
    peer = await admin(client_factory, gateway)
    await fire(gateway)
    (end,) = await finished(peer)
    assert end["status"] == "skipped" and "catchUp none" in end["error"]
    assert end["nextRunAtMs"] > clock()


async def test_a_wall_clock_jump_fires_each_job_once_not_a_burst(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    ids = []
    for every in (MINUTE, 5 * MINUTE, HOUR):
        job = await add(peer, every)
        ids.append(job["id"])
    clock.advance(26 * HOUR)  # a laptop lid closed overnight, or a clock corrected
    await fire(gateway)
    await fire(gateway)
    ends = await finished(peer, 3)
    assert sorted(end["jobId"] for end in ends) == sorted(ids)
    assert all(end["nextRunAtMs"] > clock() for end in ends)
    for job_id in ids:
        assert len((await peer.client.call("cron.runs", {"id": job_id}))["entries"]) == 1


async def test_a_wall_clock_set_back_does_not_repeat_a_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(at(2026, 6, 1, 12))
    gateway = await start(gateway_factory, clock)
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    clock.advance(HOUR)
    await fire(gateway)
    await finished(peer)
    clock.advance(-30 * MINUTE)  # the clock is corrected backwards
    await fire(gateway)
    clock.advance(30 * MINUTE)
    await fire(gateway)
    await asyncio.sleep(0.1)
    assert len((await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]) == 1


async def test_jobs_and_runs_survive_a_restart(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory)
    peer = await admin(client_factory, gateway)
    job = await add(peer)
    await peer.client.call("cron.run", {"id": job["id"]})
    await finished(peer)
    await peer.client.close()
    await gateway.restart()
    peer = await admin(client_factory, gateway)
    (listed,) = (await peer.client.call("cron.list"))["jobs"]
    assert (
        listed["id"] == job["id"] and listed["state"]["nextRunAtMs"] == job["state"]["nextRunAtMs"]
    )
    assert listed["state"]["lastStatus"] == "ok"
    assert len((await peer.client.call("cron.runs", {"id": job["id"]}))["entries"]) == 1


async def test_the_timer_fires_a_job_due_in_a_second(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin(client_factory, gateway)
    job = await add(peer, 1000)
    started = await cron_event(peer, "started", timeout=5)
    assert started["jobId"] == job["id"]
    assert started["runAtMs"] - job["state"]["nextRunAtMs"] < 1000
