"""IRC: echo round trips through a real ngircd, against a bare echo bot on the same server.

ngircd (`tests/integration/channels/ircd.py`, Debian's package) runs on loopback with its
command penalties off (`MaxPenaltyTime = 0`): with them on, it holds a client that sent
about 16 lines in a row for a second, which measures ngircd's flood policy rather than the
gateway. The gateway is a subprocess with `[channels.irc]` on that server (plain TCP,
`dm_policy = "open"`, flood control off to match). A round trip: a person's raw client
sends a PRIVMSG to the bot -> the adapter reads it -> dedupe, access, session, echo run ->
the reply's PRIVMSG lines reach the person; the clock stops at the line with the marker.
The baseline is a bare echo bot in this process (a raw client that sends every PRIVMSG
back) on the same server: the IRC round trip alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Final

import aiohttp
from tests.integration.channels.ircd import Human, Ngircd

from .channel_figures import echo_figures
from .procs import Servers
from .report import Figure

__all__ = ["IRC_ROUND_TRIPS", "measure_irc"]

IRC_ROUND_TRIPS: Final = 200
WARMUP: Final = 20
BOT: Final = "benchbot"
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    "[channels.irc]\n"
    'server = "127.0.0.1"\nport = {port}\ntls = false\nnick = "{nick}"\n'
    'dm_policy = "open"\ndebounce_ms = 0\nflood_burst = 50\nflood_interval_ms = 0\n'
)


async def _round_trips(person: Human, bot: str, count: int, tag: str) -> list[float]:
    """Send `count` messages one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{tag}-{n}"
        started = time.perf_counter()
        person.say(bot, f"ping {marker}")
        await person.wait(lambda m=marker: person.messages(bot, m), timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _bare_echo_bot(port: int, ready: asyncio.Event) -> None:
    """The baseline: a raw client that answers every PRIVMSG with its text."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NICK barebot\r\nUSER barebot 0 * :bare\r\n")
    try:
        while raw := await reader.readline():
            words = raw.decode("utf-8", "replace").rstrip("\r\n").split(" ", 3)
            if words[0] == "PING":
                writer.write(f"PONG {words[1]}\r\n".encode())
            elif len(words) > 1 and words[1] == "001":
                ready.set()
            elif len(words) == 4 and words[1] == "PRIVMSG":
                sender = words[0][1:].split("!", 1)[0]
                writer.write(f"PRIVMSG {sender} {words[3]}\r\n".encode())
    finally:
        writer.close()


async def _baseline(server: Ngircd) -> list[float]:
    ready = asyncio.Event()
    bot = asyncio.create_task(_bare_echo_bot(server.port, ready))
    person = await Human("benchbase").connect(server.port)
    try:
        await asyncio.wait_for(ready.wait(), 20)
        await _round_trips(person, "barebot", WARMUP, "warm")
        return await _round_trips(person, "barebot", IRC_ROUND_TRIPS, "base")
    finally:
        await person.close()
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await bot


async def measure_irc(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure IRC echo round trips through the gateway against a bare echo bot."""
    with tempfile.TemporaryDirectory(prefix="clawgate-bench-ngircd-") as workdir:
        server = Ngircd(Path(workdir), penalties=False)
        server.start()
        try:
            baseline = await _baseline(server)
            gateway = servers.gateway(_CONFIG.format(port=server.port, nick=BOT))
            await gateway.wait_ready(http)
            person = await Human("benchuser").connect(server.port)
            try:
                await person.wait(lambda: _online(person), timeout=30)
                await _round_trips(person, BOT, WARMUP, "warm")
                samples = await _round_trips(person, BOT, IRC_ROUND_TRIPS, "gw")
            finally:
                await person.close()
        finally:
            server.stop()
    note = (
        f"{IRC_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, ngircd penalties off; baseline: a bare raw-socket echo bot on the "
        "same ngircd"
    )
    return echo_figures("irc", samples, baseline, note)


def _online(person: Human) -> bool:
    """Ask whether the bot is on the server yet (ISON); true once the server says so."""
    if any(f" 303 {person.nick} :{BOT}" in raw for raw in person.raw):
        return True
    person.send(f"ISON {BOT}")
    return False
