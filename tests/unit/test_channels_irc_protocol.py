"""IRC's wire rules (channels/irc_protocol.py): parsing, splitting, mentions, SASL, flood."""

from __future__ import annotations

import base64

import pytest

from clawgate.channels.irc_protocol import (
    MAX_LINE,
    Ctcp,
    IrcMessage,
    Refused,
    Registered,
    RegistrationMachine,
    TextMessage,
    TokenBucket,
    addressed,
    alternative_nick,
    classify_privmsg,
    format_line,
    message_budget,
    parse_line,
    sasl_plain,
    split_for_wire,
)


def msg(line: str) -> IrcMessage:
    parsed = parse_line(line.encode())
    assert parsed is not None
    return parsed


# -- parsing and formatting ------------------------------------------------------------------


def test_a_line_parses_into_source_command_and_params() -> None:
    parsed = msg(":alice!~a@host PRIVMSG #room :hello there\r\n")
    assert parsed == IrcMessage("PRIVMSG", ("#room", "hello there"), "alice!~a@host", {})


def test_tags_are_parsed_and_unescaped() -> None:
    parsed = msg(r"@account=alice;msgid=a\sb\:c;flag :alice!a@h PRIVMSG bot :hi")
    assert parsed.tags == {"account": "alice", "msgid": "a b;c", "flag": ""}


def test_a_line_without_trailing_keeps_its_middle_params() -> None:
    assert msg("PING token").params == ("token",)
    assert msg(":srv 005 me NICKLEN=30 :are supported").params == (
        "me",
        "NICKLEN=30",
        "are supported",
    )


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"   \r\n", b":onlysource\r\n", b"@a=b\r\n"])
def test_empty_or_commandless_lines_parse_to_none(raw: bytes) -> None:
    assert parse_line(raw) is None


def test_a_line_that_is_not_utf8_is_read_as_latin1() -> None:
    parsed = parse_line(b":bob!b@h PRIVMSG bot :caf\xe9\r\n")
    assert parsed is not None and parsed.params[-1] == "café"


def test_format_line_adds_the_colon_only_where_needed() -> None:
    assert format_line("NICK", "bot") == b"NICK bot\r\n"
    assert format_line("PRIVMSG", "#r", "two words") == b"PRIVMSG #r :two words\r\n"
    assert format_line("PRIVMSG", "#r", ":starts") == b"PRIVMSG #r ::starts\r\n"


@pytest.mark.parametrize("bad", ["a\r\nQUIT", "a\nb", "nul\x00"])
def test_format_line_refuses_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(ValueError):
        format_line("PRIVMSG", "#r", bad)


# -- splitting -------------------------------------------------------------------------------


def test_every_split_body_fits_the_512_byte_line_with_our_prefix() -> None:
    source = "clawgate!~clawgate@127.0.0.1"
    budget = message_budget("#room", source, "clawgate")
    bodies = split_for_wire("word " * 1000, budget)
    for body in bodies:
        line = f":{source} PRIVMSG #room :{body}\r\n".encode()
        assert len(line) <= MAX_LINE
    assert " ".join(bodies).split() == ["word"] * 1000


def test_an_unknown_own_host_leaves_room_for_the_longest_one() -> None:
    assert message_budget("#r", None, "bot") < message_budget("#r", "bot!b@h", "bot")


def test_splitting_never_cuts_a_utf8_character() -> None:
    text = "é€😀" * 500  # 2-, 3- and 4-byte characters, no spaces
    bodies = split_for_wire(text, 100)
    assert all(len(b.encode()) <= 100 for b in bodies)
    assert "".join(bodies) == text


def test_each_line_of_a_reply_is_its_own_message_and_empty_lines_go() -> None:
    assert split_for_wire("one\r\n\ntwo\n  \nthree", 400) == ["one", "two", "three"]


def test_splitting_prefers_a_space() -> None:
    assert split_for_wire("aaaa bbbb cccc", 10) == ["aaaa bbbb", "cccc"]


def test_empty_text_gives_no_message() -> None:
    assert split_for_wire("", 400) == [] and split_for_wire("\n\n", 400) == []


# -- mentions and classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("bot: hello", "hello"),
        ("bot, hello", "hello"),
        ("BOT: hello", "hello"),
        ("@bot: hi", "hi"),
        ("bot:", ""),
        ("robot: hello", None),
        ("bot hello", None),
        ("hello bot: no", None),
        ("botty: no", None),
    ],
)
def test_only_a_leading_nick_colon_or_comma_is_a_mention(text: str, rest: str | None) -> None:
    assert addressed(text, "bot") == rest


def test_a_nick_with_regex_characters_is_matched_literally() -> None:
    assert addressed("b[o]t| : x", "b[o]t|") is None
    assert addressed("b[o]t|: x", "b[o]t|") == "x"


def test_a_channel_mention_is_gated_and_stripped() -> None:
    seen = classify_privmsg(msg(":Alice!a@h PRIVMSG #Room :bot: what time is it"), "bot")
    assert seen == TextMessage("alice", "Alice", "#room", False, "what time is it", True)
    plain = classify_privmsg(msg(":Alice!a@h PRIVMSG #Room :just chatting"), "bot")
    assert isinstance(plain, TextMessage) and not plain.mentioned


def test_a_direct_message_is_always_addressed_to_us() -> None:
    seen = classify_privmsg(msg(":Alice!a@h PRIVMSG bot :hi"), "bot")
    assert seen == TextMessage("alice", "Alice", "Alice", True, "hi", True)


def test_the_account_tag_identifies_the_sender_when_present() -> None:
    seen = classify_privmsg(msg("@account=alice_acct :Alice!a@h PRIVMSG bot :hi"), "bot")
    assert isinstance(seen, TextMessage) and seen.sender_id == "account:alice_acct"
    anonymous = classify_privmsg(msg("@account=* :Alice!a@h PRIVMSG bot :hi"), "bot")
    assert isinstance(anonymous, TextMessage) and anonymous.sender_id == "alice"


def test_our_own_echo_and_server_messages_are_ignored() -> None:
    assert classify_privmsg(msg(":bot!b@h PRIVMSG #r :mine"), "Bot") is None
    assert classify_privmsg(msg(":irc.server PRIVMSG bot :notice-ish"), "bot") is None
    assert classify_privmsg(msg(":a!a@h PRIVMSG bot"), "bot") is None


def test_ctcp_action_is_text_and_other_ctcp_requests_are_ctcp() -> None:
    action = classify_privmsg(msg(":a!a@h PRIVMSG bot :\x01ACTION waves\x01"), "bot")
    assert isinstance(action, TextMessage) and action.text == "/me waves"
    version = classify_privmsg(msg(":a!a@h PRIVMSG bot :\x01VERSION\x01"), "bot")
    assert version == Ctcp("a", "VERSION", "")
    assert classify_privmsg(msg(":a!a@h PRIVMSG #r :\x01VERSION\x01"), "bot") is None


# -- registration ----------------------------------------------------------------------------


def machine(**kwargs: object) -> RegistrationMachine:
    return RegistrationMachine("bot", username="bot", realname="Bot", **kwargs)  # type: ignore[arg-type]


def test_registration_opens_with_cap_ls_then_pass_nick_user() -> None:
    lines = machine(password="pw").start()
    assert lines == [b"CAP LS 302\r\n", b"PASS pw\r\n", b"NICK bot\r\n", b"USER bot 0 * Bot\r\n"]


def test_a_server_without_wanted_caps_gets_cap_end_and_welcomes_us() -> None:
    m = machine()
    assert m.feed(msg(":srv CAP * LS :multi-prefix")) == [b"CAP END\r\n"]
    m.feed(msg(":srv 001 bot :Welcome to the network bot!~bot@127.0.0.1"))
    assert m.outcome == Registered("bot", "bot!~bot@127.0.0.1", account_tag=False)


def test_account_tag_is_requested_when_offered() -> None:
    m = machine()
    m.feed(msg(":srv CAP * LS * :multi-prefix"))  # 302 continuation: wait for the rest
    assert m.feed(msg(":srv CAP * LS :account-tag sasl=PLAIN")) == [b"CAP REQ account-tag\r\n"]
    assert m.feed(msg(":srv CAP * ACK :account-tag")) == [b"CAP END\r\n"]
    m.feed(msg(":srv 001 bot :Welcome"))
    assert m.outcome == Registered("bot", None, account_tag=True)


def test_sasl_plain_runs_the_authenticate_exchange() -> None:
    m = machine(password="pw", sasl=("acct", "pw"))
    assert b"PASS pw\r\n" not in m.start()  # the password goes through SASL only
    assert m.feed(msg(":srv CAP * LS :sasl account-tag")) == [b"CAP REQ :account-tag sasl\r\n"]
    assert m.feed(msg(":srv CAP * ACK :account-tag sasl")) == [b"AUTHENTICATE PLAIN\r\n"]
    [payload] = m.feed(msg("AUTHENTICATE +"))
    assert base64.b64decode(payload.split()[1]) == b"\0acct\0pw"
    assert m.feed(msg(":srv 903 bot :SASL authentication successful")) == [b"CAP END\r\n"]


def test_sasl_plain_payloads_are_cut_at_400_bytes_and_terminated() -> None:
    pieces = sasl_plain("acct", "p" * 600)
    assert [len(p) for p in pieces[:-1]] == [400, 400] and 0 < len(pieces[-1]) < 400
    # base64 of exactly 300 bytes is exactly 400 characters: a "+" says it ended.
    exact = sasl_plain("a", "x" * (300 - 3))
    assert [len(p) for p in exact] == [400, 1] and exact[-1] == "+"
    assert base64.b64decode("".join(exact[:-1])) == b"\0a\0" + b"x" * 297


def test_a_failed_sasl_login_is_an_auth_refusal() -> None:
    m = machine(password="pw", sasl=("acct", "pw"))
    m.feed(msg(":srv CAP * LS :sasl"))
    m.feed(msg(":srv CAP * ACK :sasl"))
    m.feed(msg("AUTHENTICATE +"))
    m.feed(msg(":srv 904 bot :SASL authentication failed"))
    assert isinstance(m.outcome, Refused) and m.outcome.auth


def test_sasl_wanted_on_a_server_without_it_is_refused() -> None:
    m = machine(password="pw", sasl=("acct", "pw"))
    assert m.feed(msg(":srv CAP * LS :multi-prefix")) == []
    assert isinstance(m.outcome, Refused) and "no SASL" in m.outcome.reason


def test_a_bad_server_password_is_an_auth_refusal() -> None:
    m = machine(password="wrong")
    m.feed(msg("ERROR :Access denied: Bad password?"))
    assert isinstance(m.outcome, Refused) and m.outcome.auth
    numeric = machine(password="wrong")
    numeric.feed(msg(":srv 464 * :Password incorrect"))
    assert isinstance(numeric.outcome, Refused) and numeric.outcome.auth


def test_another_error_before_welcome_is_worth_a_retry() -> None:
    m = machine()
    m.feed(msg("ERROR :Closing link: server shutting down"))
    assert isinstance(m.outcome, Refused) and not m.outcome.auth


def test_a_taken_nick_moves_to_the_next_alternative() -> None:
    m = machine()
    assert m.feed(msg(":srv 433 * bot :Nickname already in use")) == [b"NICK bot_\r\n"]
    assert m.feed(msg(":srv 433 * bot_ :Nickname already in use")) == [b"NICK bot2\r\n"]
    m.feed(msg(":srv 001 bot2 :Welcome"))
    assert isinstance(m.outcome, Registered) and m.outcome.nick == "bot2"


def test_an_invalid_configured_nick_is_an_auth_refusal() -> None:
    m = machine()
    m.feed(msg(":srv 432 * bot :Erroneous nickname"))
    assert isinstance(m.outcome, Refused) and m.outcome.auth


def test_alternative_nicks_fit_the_length_the_server_accepted() -> None:
    assert [alternative_nick("ninechars", n) for n in range(4)] == [
        "ninechars",
        "ninechar_",
        "ninechar2",
        "ninechar3",
    ]
    assert alternative_nick("bot", 12) == "bot12"


# -- flood control ---------------------------------------------------------------------------


def test_the_bucket_allows_a_burst_then_one_line_per_interval() -> None:
    bucket = TokenBucket(burst=3, interval_s=2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(2.0)
    assert bucket.take(101.0) == pytest.approx(1.0)
    assert bucket.take(102.0) == 0.0
    assert bucket.take(102.0) == pytest.approx(2.0)


def test_the_bucket_refills_to_its_burst_and_no_further() -> None:
    bucket = TokenBucket(burst=2, interval_s=1.0, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert [bucket.take(1000.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take(1000.0) > 0


def test_a_zero_interval_bucket_never_waits() -> None:
    bucket = TokenBucket(burst=1, interval_s=0.0, now=0.0)
    assert all(bucket.take(0.0) == 0.0 for _ in range(100))
