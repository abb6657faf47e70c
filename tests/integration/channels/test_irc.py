"""IRC end to end: a real gateway, a real ngircd, a person's raw IRC client."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.channels.ircd import Human, Ngircd
from tests.integration.conftest import PeerFactory

Humans = Callable[..., Awaitable[Human]]
_numbers = itertools.count(1)


def nicks() -> tuple[str, str, str]:
    """Return a fresh (bot, alice, bob) nick triple: tests share one server."""
    n = next(_numbers)
    return f"cgbot{n}", f"alice{n}", f"bob{n}"


def irc_table(server: Ngircd, nick: str, **overrides: Any) -> dict[str, Any]:
    """Return an `[channels.irc]` table for `server` (plain port unless `tls=True`)."""
    tls = bool(overrides.pop("tls", False))
    table: dict[str, Any] = {
        "server": "localhost" if tls else "127.0.0.1",
        "port": server.tls_port if tls else server.port,
        "tls": tls,
        "nick": nick,
        "debounce_ms": 0,
        "flood_interval_ms": 50,
        "flood_burst": 10,
        **overrides,
    }
    if tls and "tls_ca_file" not in overrides:
        table["tls_ca_file"] = server.ca_file
    return {"irc": table}


async def irc_gateway(
    factory: GatewayFactory, server: Ngircd, nick: str, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the IRC channel on `server`, connected."""
    agent = overrides.pop("agent", None)
    gateway = await channel_gateway(factory, irc_table(server, nick, **overrides), agent=agent)
    service = gateway.server.channels
    assert service is not None
    runner = service.runtime.runner_for("irc", None)
    assert await runner.wait_connected(30), runner.last_error
    return gateway


async def pair(human: Human, bot: str, peer: Any) -> None:
    """Pair `human` with the bot through the real flow: DM, code, approve."""
    human.say(bot, "hi there")
    await human.wait(lambda: human.messages(bot, "Pairing code:"))
    await approve_pending(peer, "irc")


# -- closed by default and pairing ------------------------------------------------------


async def test_a_stranger_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    await irc_gateway(gateway_factory, ircd, bot)
    human = await humans(ircd.port, alice)
    human.say(bot, "please run rm -rf /")
    [line] = await human.wait(lambda: human.messages(bot, "Pairing code:"))  # type: ignore[misc]
    code = line.text.split("Pairing code: ")[1].split()[0]
    assert len(code) == 8 and code.isalnum() and code.isupper()
    assert not any("rm -rf" in line.text for line in human.received)


async def test_dm_pairing_approve_then_the_agent_answers_over_tls(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    gateway = await irc_gateway(gateway_factory, ircd, bot, tls=True)
    peer = await operator(client_factory, gateway)
    human = await humans(ircd.port, alice)
    human.say(bot, "hello")
    await human.wait(lambda: human.messages(bot, "Pairing code:"))
    entry = await approve_pending(peer, "irc")
    assert (entry["channel"], entry["sender"], entry["senderName"]) == ("irc", alice, alice)
    human.say(bot, "what is the weather")
    await human.wait(lambda: human.messages(bot, "what is the weather"))
    sessions = await peer.client.call("sessions.list")
    assert f"agent:main:irc:dm:{alice}" in [s["key"] for s in sessions["sessions"]]


async def test_the_sender_is_known_by_nick_in_any_case(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    gateway = await irc_gateway(gateway_factory, ircd, bot, allow_from=[alice])
    await operator(client_factory, gateway)
    human = await humans(ircd.port, alice.upper())
    human.say(bot, "shouting my nick")
    await human.wait(lambda: human.messages(bot, "shouting my nick"))


async def test_an_untrusted_server_certificate_is_a_clear_status_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, ircd: Ngircd
) -> None:
    bot, _, _ = nicks()
    table = irc_table(ircd, bot, tls=True, tls_ca_file=None)
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)
    status = await wait_for(lambda: _errored(peer), timeout=20)
    assert "certificate" in status["lastError"] and "tls_ca_file" in status["lastError"]


async def _errored(peer: Any) -> dict[str, Any] | None:
    status = await channel_status(peer, "irc")
    return status if status["lastError"] else None


# -- channels and mention gating ----------------------------------------------------------


async def test_a_channel_answers_only_nick_colon_and_nick_comma_mentions(
    gateway_factory: GatewayFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    room = f"#room-{bot}"
    await irc_gateway(gateway_factory, ircd, bot, channels=[room])
    human = await humans(ircd.port, alice)
    await human.join(room)
    await human.wait_member(room, bot)
    human.say(room, "chatting among ourselves")
    human.say(room, f"the {bot} is mentioned but not addressed")
    human.say(room, f"{bot}: first question")
    human.say(room, f"{bot}, second question")
    await human.wait(lambda: human.messages(bot, "second question", target=room))
    assert len(human.messages(bot, "first question", target=room)) == 1
    # Each answer addresses its sender on its first line.
    assert human.messages(bot, target=room)[0].text.startswith(f"{alice}: ")
    assert human.messages(bot, "among ourselves") == []
    assert human.messages(bot, "not addressed") == []


async def test_a_channel_outside_groups_is_not_answered(
    gateway_factory: GatewayFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    room, other = f"#in-{bot}", f"#out-{bot}"
    await irc_gateway(gateway_factory, ircd, bot, channels=[room, other], groups=[room])
    human = await humans(ircd.port, alice)
    await human.join(other)
    await human.join(room)
    await human.wait_member(room, bot)
    await human.wait_member(other, bot)
    human.say(other, f"{bot}: not here")
    human.say(room, f"{bot}: here")
    await human.wait(lambda: human.messages(bot, "here", target=room))
    assert human.messages(bot, target=other) == []


# -- outbound: send, splitting, flood control --------------------------------------------------


async def test_send_reaches_a_nick_and_a_channel(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    room = f"#news-{bot}"
    gateway = await irc_gateway(gateway_factory, ircd, bot, channels=[room])
    peer = await operator(client_factory, gateway)
    human = await humans(ircd.port, alice)
    await human.join(room)
    await human.wait_member(room, bot)
    direct = await peer.client.call(
        "send", {"to": alice, "message": "just for you", "idempotencyKey": "irc-send-1"}
    )
    await peer.client.call(
        "send",
        {"to": room, "message": "for everyone", "channel": "irc", "idempotencyKey": "irc-send-2"},
    )
    await human.wait(lambda: human.messages(bot, "for everyone", target=room))
    assert len(human.messages(bot, "just for you", target=alice)) == 1
    assert direct["channel"] == "irc" and direct["chatId"] == alice and direct["messageId"]


async def test_a_long_reply_is_split_into_512_byte_lines_in_order(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    gateway = await irc_gateway(gateway_factory, ircd, bot)
    peer = await operator(client_factory, gateway)
    human = await humans(ircd.port, alice)
    words = [f"w{n:03d}é€😀" for n in range(300)]  # multi-byte characters at the cuts
    await peer.client.call(
        "send", {"to": alice, "message": " ".join(words) + " END", "idempotencyKey": "long"}
    )
    await human.wait(lambda: human.messages(bot, "END"))
    lines = [raw for raw in human.raw if " PRIVMSG " in raw and raw.startswith(f":{bot}!")]
    assert len(lines) >= 6
    assert all(len(raw.encode()) + 2 <= 512 for raw in lines)
    received = " ".join(line.text for line in human.messages(bot)).split()
    assert received == [*words, "END"]


async def test_flood_control_delivers_a_burst_whole_and_in_order(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    gateway = await irc_gateway(gateway_factory, ircd, bot, flood_burst=2, flood_interval_ms=100)
    peer = await operator(client_factory, gateway)
    human = await humans(ircd.port, alice)
    text = "\n".join(f"line {n}" for n in range(15))
    await peer.client.call("send", {"to": alice, "message": text, "idempotencyKey": "burst"})
    await human.wait(lambda: human.messages(bot, "line 14"))
    assert [line.text for line in human.messages(bot)] == [f"line {n}" for n in range(15)]
    status = await channel_status(peer, "irc")
    assert status["connected"] and status["reconnects"] == 0


# -- nick collision ------------------------------------------------------------------------------


async def test_a_taken_nick_gets_an_alternative_and_is_taken_back_when_free(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    squatter = await humans(ircd.port, bot)
    gateway = await irc_gateway(gateway_factory, ircd, bot, dm_policy="open", ping_interval_s=0.5)
    peer = await operator(client_factory, gateway)
    human = await humans(ircd.port, alice)
    human.say(f"{bot}_", "on the alternative")
    await human.wait(lambda: human.messages(f"{bot}_", "on the alternative"))
    status = await channel_status(peer, "irc")
    assert f"{bot} is taken" in str(status["lastError"])
    await squatter.close()
    human.send(f"ISON {bot}")

    async def answered_under_the_own_nick() -> bool:
        human.say(bot, "back to the real nick")
        return bool(await _soon(human, lambda: human.messages(bot, "back to the real nick")))

    await wait_for(answered_under_the_own_nick, timeout=30, interval=0.1)


async def _soon(human: Human, check: Callable[[], Any]) -> Any:
    try:
        return await human.wait(check, timeout=1.5)
    except TimeoutError:
        return None


# -- server trouble ----------------------------------------------------------------------------


async def test_ngircd_restarted_mid_stream_reconnects_and_loses_no_reply(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    humans: Humans,
    own_ircd: Ngircd,
) -> None:
    from clawgate.config import AgentSection

    bot, alice, _ = nicks()
    agent = AgentSection(echo_delay_ms=1500)
    gateway = await irc_gateway(gateway_factory, own_ircd, bot, allow_from=[alice], agent=agent)
    peer = await operator(client_factory, gateway)
    human = await humans(own_ircd.port, alice)
    human.say(bot, "before the outage")
    # Received and persisted, answer still being written (one word each 1.5 s) ...
    await wait_for(lambda: _inbound_seen(peer), timeout=20)
    own_ircd.stop()  # ... when the server goes away
    own_ircd.start()
    back = await humans(own_ircd.port, alice)
    await back.wait(lambda: back.messages(bot, "before the outage"), timeout=60)
    back.say(bot, "after")
    await back.wait(lambda: back.messages(bot, "after"), timeout=30)
    status = await channel_status(peer, "irc")
    assert status["connected"] and status["reconnects"] >= 1
    assert len(back.messages(bot, "before the outage")) == 1


async def _inbound_seen(peer: Any) -> bool:
    return (await channel_status(peer, "irc"))["lastInboundAt"] is not None


@pytest.mark.slow
async def test_a_half_open_connection_is_noticed_and_rebuilt(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    proxy = TcpProxy(ircd.port)
    await proxy.start()
    try:
        table = irc_table(ircd, bot, port=proxy.port, allow_from=[alice], ping_interval_s=0.5)
        gateway = await channel_gateway(gateway_factory, table)
        peer = await operator(client_factory, gateway)
        await wait_for(lambda: _connected(peer, reconnects=0), timeout=30)
        proxy.freeze()  # the socket stays open and nothing comes back: PINGs go unanswered
        status = await wait_for(lambda: _rebuilding(peer), timeout=60, interval=0.1)
        assert "no progress" in str(status["lastError"])
        proxy.thaw()
        await wait_for(lambda: _connected(peer, reconnects=1), timeout=60, interval=0.1)
        human = await humans(ircd.port, alice)

        async def answered() -> bool:
            # The old session may hold the nick for a moment; the bot takes it back.
            human.say(bot, "are you back")
            return bool(await _soon(human, lambda: human.messages(bot, "are you back")))

        await wait_for(answered, timeout=30, interval=0.1)
    finally:
        await proxy.stop()


async def _rebuilding(peer: Any) -> dict[str, Any] | None:
    status = await channel_status(peer, "irc")
    return status if status["reconnects"] >= 1 or status["state"] == "backoff" else None


async def _connected(peer: Any, reconnects: int) -> dict[str, Any] | None:
    status = await channel_status(peer, "irc")
    return status if status["connected"] and status["reconnects"] >= reconnects else None


# -- credentials ---------------------------------------------------------------------------------


async def test_the_server_password_lets_the_bot_in(
    gateway_factory: GatewayFactory, humans: Humans, password_ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    password = password_ircd.password
    assert password is not None
    gateway = await irc_gateway(
        gateway_factory, password_ircd, bot, password=password, dm_policy="open"
    )
    human = await humans(password_ircd.port, alice, password=password)
    human.say(bot, "through the password")
    await human.wait(lambda: human.messages(bot, "through the password"))
    await gateway.server.stop()
    for path in gateway.home.rglob("*"):  # the log, state.db and its WAL, everything
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


async def test_a_bad_password_fails_the_account_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, password_ircd: Ngircd
) -> None:
    import asyncio

    bot, _, _ = nicks()
    table = irc_table(password_ircd, bot, password="not-the-password")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)
    status = await wait_for(lambda: _failed(peer), timeout=20)
    assert "password" in status["lastError"] and "not-the-password" not in status["lastError"]
    connections = password_ircd.accepted()
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert password_ircd.accepted() == connections
    assert (await channel_status(peer, "irc"))["reconnects"] == 0


async def _failed(peer: Any) -> dict[str, Any] | None:
    status = await channel_status(peer, "irc")
    return status if status["state"] == "failed" else None


# -- odd input -----------------------------------------------------------------------------------


async def test_odd_input_does_not_stop_the_adapter(
    gateway_factory: GatewayFactory, humans: Humans, ircd: Ngircd
) -> None:
    bot, alice, _ = nicks()
    await irc_gateway(gateway_factory, ircd, bot, allow_from=[alice])
    human = await humans(ircd.port, alice)
    human.send(f"PRIVMSG {bot} :")  # empty text
    human.send(f"PRIVMSG {bot} :   ")
    human.send(f"NOTICE {bot} :a notice is never answered")
    human.say(bot, "\x01VERSION\x01")
    human.say(bot, "\x01CLIENTINFO\x01")
    human.send_bytes(f"PRIVMSG {bot} :caf\xe9 in latin-1\r\n".encode("latin-1"))
    longest = f"PRIVMSG {bot} :".encode()
    human.send_bytes(longest + b"y" * (510 - len(longest)) + b"\r\n")  # the longest line
    human.say(bot, "\x01ACTION waves\x01")
    human.say(bot, "still here")
    await human.wait(lambda: human.messages(bot, "still here"))
    assert human.messages(bot, "/me waves")
    assert human.messages(bot, "café in latin-1")
    assert human.messages(bot, "yyyyyyyyyy")
    notices = [line.text for line in human.received if line.command == "NOTICE"]
    assert [text for text in notices if "VERSION" in text] == ["\x01VERSION clawgate\x01"]
    assert human.messages(bot, "never answered") == []


async def test_channels_status_shows_the_connected_irc_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, ircd: Ngircd
) -> None:
    bot, _, _ = nicks()
    gateway = await irc_gateway(gateway_factory, ircd, bot)
    peer = await operator(client_factory, gateway)
    status = await channel_status(peer, "irc")
    assert (status["connected"], status["running"], status["state"]) == (True, True, "connected")
    assert status["lastError"] is None
