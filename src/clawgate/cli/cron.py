"""`clawgate cron …`: list, add, edit, remove and run cron jobs on a running gateway.

Times are shown in UTC and on the wall clock of the job's zone (a `cron` job's own `tz`,
else the gateway's zone), so a schedule across a DST change reads as it will happen.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import console, fail, print_json
from .call import JsonOption, TokenOption, UrlOption, with_client

if TYPE_CHECKING:
    from ..client import GatewayClient

__all__ = ["app"]

app = typer.Typer(help="Schedule agent turns and reminders (cron jobs).", no_args_is_help=True)


CronOption = Annotated[
    str | None,
    typer.Option("--cron", help="Cron expression, e.g. '0 8 * * 1-5' (6 fields: seconds first)."),
]
TzOption = Annotated[
    str | None,
    typer.Option(
        "--tz", help="IANA zone of --cron or --at, e.g. Europe/Berlin (default: the gateway's)."
    ),
]
EveryOption = Annotated[str | None, typer.Option("--every", help="Interval, e.g. 30m, 1h30m, 2d.")]
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Once, at 2026-12-24T18:00 (in --tz), an RFC 3339 time, or +20m."),
]
NameOption = Annotated[str | None, typer.Option("--name", help="A name to show.")]
DescriptionOption = Annotated[str | None, typer.Option("--description", help="What it is for.")]
MessageOption = Annotated[
    str | None, typer.Option("--message", "-m", help="Ask the agent this (an isolated agent turn).")
]
EventOption = Annotated[
    str | None,
    typer.Option("--system-event", help="Queue this text for the main session instead."),
]
SessionOption = Annotated[str | None, typer.Option("--session", help="main or isolated.")]
WakeOption = Annotated[str | None, typer.Option("--wake", help="now or next-heartbeat (main).")]
DeliverOption = Annotated[
    bool | None, typer.Option("--deliver/--no-deliver", help="Deliver the agent's reply.")
]
ChannelOption = Annotated[
    str | None, typer.Option("--channel", help="Where to deliver (default: webchat).")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Whom to deliver to (webchat: a session, default main).")
]
TimeoutOption = Annotated[
    int | None, typer.Option("--timeout-seconds", help="Give the agent turn at most this long.")
]
DeleteOption = Annotated[
    bool | None,
    typer.Option("--delete-after-run/--keep-after-run", help="Remove the job after a good run."),
]
CatchUpOption = Annotated[
    str | None, typer.Option("--catch-up", help="none or once (a missed run, once, late).")
]
OverlapOption = Annotated[
    str | None, typer.Option("--overlap", help="skip or queue (when still running).")
]
BackoffOption = Annotated[
    str | None, typer.Option("--backoff", help="exponential or none (after errors).")
]
IdArgument = Annotated[str, typer.Argument(help="Job id, or a unique prefix of one.")]


# -- showing ----------------------------------------------------------------------------


def _zone_of(job: dict[str, Any], default_tz: str) -> str:
    schedule = job["schedule"]
    return str(schedule.get("tz") or default_tz) if schedule["kind"] == "cron" else default_tz


def _when(ms: int | None, zone: str, *, compact: bool = False) -> str:
    """Return `ms` in UTC and on the wall clock of `zone` (`compact`: two short lines)."""
    if ms is None:
        return "-"
    from ..automation.zones import wall_time

    utc = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    local = wall_time(ms, zone)
    if local.utcoffset() == dt.timedelta(0) and zone in ("UTC", "Etc/UTC"):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    day = "" if local.date() == utc.date() else f"{local:%Y-%m-%d} "
    if compact:
        return f"{utc:%Y-%m-%d %H:%M} UTC\n{day}{local:%H:%M} {local.tzname()}"
    return f"{utc:%Y-%m-%d %H:%M} UTC ({day}{local:%H:%M} {local.tzname()} {zone})"


def _schedule_text(job: dict[str, Any], default_tz: str) -> str:
    from ..automation.durations import format_duration

    schedule = job["schedule"]
    if schedule["kind"] == "cron":
        return f"cron {schedule['expr']} ({schedule.get('tz') or default_tz})"
    if schedule["kind"] == "every":
        return f"every {format_duration(schedule['everyMs'] // 1000)}"
    return f"at {_when(schedule['atMs'], default_tz, compact=True)}"


def _what(job: dict[str, Any]) -> str:
    payload = job["payload"]
    if payload["kind"] == "systemEvent":
        return f"main: {payload['text']}"
    deliver = " -> " + (payload.get("to") or "main") if payload.get("deliver") else ""
    return f"isolated: {payload['message']}{deliver}"


def _last(state: dict[str, Any]) -> str:
    status = state.get("lastStatus")
    if status is None:
        return "-"
    late = " (late)" if state.get("lastRunLate") else ""
    error = f": {state['lastError']}" if state.get("lastError") else ""
    streak = state.get("consecutiveErrors")
    streak_text = f" [{streak} errors in a row]" if streak and streak > 1 else ""
    return f"{status}{late}{error}{streak_text}"


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- talking to the gateway ------------------------------------------------------------------


async def _resolve(client: GatewayClient, prefix: str) -> dict[str, Any]:
    """Return the job whose id is `prefix` or starts with it."""
    jobs = (await client.call("cron.list", {"includeDisabled": True}))["jobs"]
    exact = [job for job in jobs if job["id"] == prefix]
    matches = exact or [job for job in jobs if job["id"].startswith(prefix)]
    if len(matches) == 1:
        return dict(matches[0])
    if not matches:
        fail(f"no cron job starts with '{prefix}'; see `clawgate cron list --all`", 1)
    fail(f"'{prefix}' matches {len(matches)} jobs; give more of the id", 1)


def _at_ms(text: str, zone: str) -> int:
    """Read --at: a local time in `zone`, an RFC 3339 time, or +<duration> from now."""
    from ..automation.durations import parse_duration
    from ..automation.schedule import ScheduleError, local_to_ms
    from ..automation.zones import ZoneError, to_ms

    if text.startswith("+"):
        try:
            seconds = parse_duration(text[1:])
        except ValueError as exc:
            fail(f"--at {exc}", 2)
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000) + seconds * 1000
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        fail(f"--at {text!r} is not a time; write e.g. 2026-12-24T18:00 or +20m", 2)
    if moment.tzinfo is not None:
        return to_ms(moment)
    try:
        return local_to_ms(moment, zone)
    except (ScheduleError, ZoneError) as exc:
        fail(f"--at: {exc}", 2)


def _schedule(
    client_zone: str, cron: str | None, every: str | None, at: str | None, tz: str | None
) -> dict[str, Any] | None:
    from ..automation.durations import parse_duration

    given = [name for name, value in (("--cron", cron), ("--every", every), ("--at", at)) if value]
    if len(given) > 1:
        fail(f"give one schedule, not {' and '.join(given)}", 2)
    if cron is not None:
        schedule: dict[str, Any] = {"kind": "cron", "expr": cron}
        if tz is not None:
            schedule["tz"] = tz
        return schedule
    if tz is not None and at is None:
        fail("--tz goes with --cron or --at", 2)
    if every is not None:
        try:
            return {"kind": "every", "everyMs": parse_duration(every) * 1000}
        except ValueError as exc:
            fail(f"--every {exc}", 2)
    if at is not None:
        return {"kind": "at", "atMs": _at_ms(at, tz or client_zone)}
    return None


def _payload(
    message: str | None,
    event: str | None,
    deliver: bool | None,
    channel: str | None,
    to: str | None,
    timeout: int | None,
) -> dict[str, Any] | None:
    if message is not None and event is not None:
        fail("give --message or --system-event, not both", 2)
    if event is not None:
        if deliver or channel or to or timeout:
            fail("--deliver, --channel, --to and --timeout-seconds go with --message", 2)
        return {"kind": "systemEvent", "text": event}
    if message is None:
        if deliver is not None or channel or to or timeout:
            return {"kind": "agentTurn"}  # a patch of the current agent turn
        return None
    payload: dict[str, Any] = {"kind": "agentTurn", "message": message}
    return payload


def _turn_fields(
    payload: dict[str, Any],
    deliver: bool | None,
    channel: str | None,
    to: str | None,
    timeout: int | None,
) -> dict[str, Any]:
    if payload["kind"] != "agentTurn":
        return payload
    if deliver is not None:
        payload["deliver"] = deliver
    if channel is not None:
        payload["channel"] = channel
    if to is not None:
        payload["to"] = to
    if timeout is not None:
        payload["timeoutSeconds"] = timeout
    return payload


def _fields(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


_CHOICES = {
    "sessionTarget": ("--session", ("main", "isolated")),
    "wakeMode": ("--wake", ("now", "next-heartbeat")),
    "catchUp": ("--catch-up", ("none", "once")),
    "overlap": ("--overlap", ("skip", "queue")),
    "backoff": ("--backoff", ("exponential", "none")),
}


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    """Refuse a policy value the gateway would refuse, naming the flag and its choices."""
    for key, (flag, allowed) in _CHOICES.items():
        if key in fields and fields[key] not in allowed:
            fail(f"{flag} must be {' or '.join(allowed)}, not {fields[key]!r}", 2)
    return fields


def _report(verb: str, job: dict[str, Any], default_tz: str) -> None:
    zone = _zone_of(job, default_tz)
    label = job.get("name") or job["id"]
    next_run = job["state"].get("nextRunAtMs")
    when = _when(next_run, zone) if next_run else "none"
    print(f"{verb} {job['id']} ({label}): next run {when}")


# -- commands ----------------------------------------------------------------------------


@app.command("list")
def list_(
    all_jobs: Annotated[bool, typer.Option("--all", help="Include disabled jobs.")] = False,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show the jobs, the next to run first, with their next run in UTC and local time."""

    async def ask(client: GatewayClient) -> tuple[dict[str, Any], dict[str, Any]]:
        listing = await client.call("cron.list", {"includeDisabled": all_jobs})
        return listing, await client.call("cron.status")

    listing, status = with_client(url, token, ask)
    if json_output:
        print_json(listing, compact=True)
        return
    from rich.markup import escape
    from rich.table import Table

    default_tz = status["timezone"]
    if not listing["jobs"]:
        console.print("no cron jobs" + ("" if all_jobs else " (--all shows disabled ones)"))
        return
    table = Table(title=f"cron jobs (gateway zone {default_tz})")
    for column in ("id", "name", "schedule", "what", "next run", "last run", "on"):
        table.add_column(column)
    for job in listing["jobs"]:
        state = job["state"]
        table.add_row(
            job["id"][:8],
            escape(job.get("name") or "-"),
            escape(_schedule_text(job, default_tz)),
            escape(_short(_what(job))),
            _when(state.get("nextRunAtMs"), _zone_of(job, default_tz), compact=True),
            escape(_short(_last(state), 60)),
            "yes" if job["enabled"] else "no",
        )
    console.print(table)


@app.command("status")
def status(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show whether the scheduler runs, how many jobs it has and when it wakes next."""
    result = with_client(url, token, lambda client: client.call("cron.status"))
    if json_output:
        print_json(result, compact=True)
        return
    state = "on" if result["enabled"] else "off ([cron] enabled = false)"
    print(f"scheduler: {state}")
    print(f"jobs: {result['jobs']}")
    print(f"zone: {result['timezone']}")
    print(f"next wake: {_when(result['nextWakeAtMs'], result['timezone'])}")


@app.command("add")
def add(
    name: NameOption = None,
    cron: CronOption = None,
    tz: TzOption = None,
    every: EveryOption = None,
    at: AtOption = None,
    message: MessageOption = None,
    system_event: EventOption = None,
    session: SessionOption = None,
    wake: WakeOption = None,
    deliver: DeliverOption = None,
    channel: ChannelOption = None,
    to: ToOption = None,
    timeout_seconds: TimeoutOption = None,
    delete_after_run: DeleteOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off.")] = False,
    catch_up: CatchUpOption = None,
    overlap: OverlapOption = None,
    backoff: BackoffOption = None,
    description: DescriptionOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Add a job: one schedule (--cron/--every/--at) and one payload (--message/--system-event)."""
    if message is None and system_event is None:
        fail("say what the job does: --message TEXT (ask the agent) or --system-event TEXT", 2)
    payload = _payload(message, system_event, deliver, channel, to, timeout_seconds)
    assert payload is not None
    payload = _turn_fields(payload, deliver, channel, to, timeout_seconds)

    async def run(client: GatewayClient) -> tuple[dict[str, Any], str]:
        zone = (await client.call("cron.status"))["timezone"]
        schedule = _schedule(zone, cron, every, at, tz)
        if schedule is None:
            fail("give a schedule: --cron EXPR [--tz ZONE], --every 30m or --at TIME", 2)
        params = _checked(
            _fields(
                name=name,
                description=description,
                schedule=schedule,
                payload=payload,
                sessionTarget=session,
                wakeMode=wake,
                deleteAfterRun=delete_after_run,
                enabled=False if disabled else None,
                catchUp=catch_up,
                overlap=overlap,
                backoff=backoff,
            )
        )
        return await client.call("cron.add", params), zone

    job, zone = with_client(url, token, run)
    if json_output:
        print_json(job, compact=True)
        return
    _report("added", job, zone)


@app.command("edit")
def edit(
    job_id: IdArgument,
    name: NameOption = None,
    cron: CronOption = None,
    tz: TzOption = None,
    every: EveryOption = None,
    at: AtOption = None,
    message: MessageOption = None,
    system_event: EventOption = None,
    session: SessionOption = None,
    wake: WakeOption = None,
    deliver: DeliverOption = None,
    channel: ChannelOption = None,
    to: ToOption = None,
    timeout_seconds: TimeoutOption = None,
    delete_after_run: DeleteOption = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Switch the job on or off.")
    ] = None,
    catch_up: CatchUpOption = None,
    overlap: OverlapOption = None,
    backoff: BackoffOption = None,
    description: DescriptionOption = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Change a job; only the options given change (a new schedule counts from now)."""
    payload = _payload(message, system_event, deliver, channel, to, timeout_seconds)
    if payload is not None:
        payload = _turn_fields(payload, deliver, channel, to, timeout_seconds)

    async def run(client: GatewayClient) -> tuple[dict[str, Any], str]:
        job = await _resolve(client, job_id)
        zone = (await client.call("cron.status"))["timezone"]
        schedule = _schedule(zone, cron, every, at, tz)
        if schedule is None and tz is not None and job["schedule"]["kind"] == "cron":
            schedule = {**job["schedule"], "tz": tz}  # only the zone changes
        patch = _checked(
            _fields(
                name=name,
                description=description,
                schedule=schedule,
                payload=payload,
                sessionTarget=session,
                wakeMode=wake,
                deleteAfterRun=delete_after_run,
                enabled=enabled,
                catchUp=catch_up,
                overlap=overlap,
                backoff=backoff,
            )
        )
        if not patch:
            fail("nothing to change; give an option (see --help)", 2)
        return await client.call("cron.update", {"id": job["id"], "patch": patch}), zone

    job, zone = with_client(url, token, run)
    if json_output:
        print_json(job, compact=True)
        return
    _report("updated", job, zone)


@app.command("rm")
def remove(
    job_id: IdArgument,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Remove a job; its runs stay readable with `cron runs` for 7 days."""

    async def run(client: GatewayClient) -> dict[str, Any]:
        job = await _resolve(client, job_id)
        result: dict[str, Any] = await client.call("cron.remove", {"id": job["id"]})
        return {**result, "id": job["id"]}

    result = with_client(url, token, run)
    if json_output:
        print_json(result, compact=True)
        return
    print(f"removed {result['id']}" if result["removed"] else f"{result['id']} was already gone")


@app.command("run")
def run_now(
    job_id: IdArgument,
    due: Annotated[bool, typer.Option("--due", help="Only if it is due now.")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Retry-safe: one run per key.")
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Run a job now; `cron runs` shows how it went."""

    async def run(client: GatewayClient) -> dict[str, Any]:
        job = await _resolve(client, job_id)
        params = _fields(
            id=job["id"], mode="due" if due else "force", idempotencyKey=idempotency_key
        )
        result: dict[str, Any] = await client.call("cron.run", params)
        return result

    result = with_client(url, token, run)
    if json_output:
        print_json(result, compact=True)
    elif result.get("ran"):
        print(f"started run {result['runId']}")
    else:
        print(f"not run: {result.get('reason')}")


@app.command("runs")
def runs(
    job_id: IdArgument,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="How many.")] = 20,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show a job's past runs, newest first (a removed job's for 7 days)."""

    async def ask(client: GatewayClient) -> tuple[dict[str, Any], str, str]:
        jobs = (await client.call("cron.list", {"includeDisabled": True}))["jobs"]
        matches = [job for job in jobs if job["id"].startswith(job_id)]
        zone = (await client.call("cron.status"))["timezone"]
        if len(matches) == 1:
            chosen, zone = matches[0]["id"], _zone_of(matches[0], zone)
        else:
            chosen = job_id  # a removed job answers by its full id
        result = await client.call("cron.runs", {"id": chosen, "limit": limit})
        return result, chosen, zone

    result, chosen, zone = with_client(url, token, ask)
    if json_output:
        print_json(result, compact=True)
        return
    from rich.markup import escape
    from rich.table import Table

    if not result["entries"]:
        console.print(f"no runs of {chosen} yet")
        return
    table = Table(title=f"runs of {chosen}")
    for column in ("started", "status", "trigger", "took", "summary or error"):
        table.add_column(column)
    for entry in result["entries"]:
        status_text = entry["status"] + (" (late)" if entry.get("late") else "")
        detail = entry.get("error") or entry.get("summary") or ""
        table.add_row(
            _when(entry["runAtMs"], zone, compact=True),
            status_text,
            entry.get("trigger", "-"),
            f"{entry['durationMs'] / 1000:.1f} s",
            escape(_short(detail.replace("\n", " "), 80)),
        )
    console.print(table)
