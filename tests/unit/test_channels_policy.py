"""Access decisions and DM pairing codes (channels/policy.py)."""

from __future__ import annotations

import itertools
from typing import Any

from clawgate.channels.base import AccountConfig, ChatKind, ChatRef, InboundMessage, Sender
from clawgate.channels.policy import (
    PairingBook,
    RefusalLog,
    Verdict,
    decide_access,
    random_code,
)

HOUR = 3_600_000


def message(
    sender: str = "7", kind: ChatKind = ChatKind.DM, chat: str = "7", **extra: Any
) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        account_id="default",
        message_id=f"{chat}:{sender}",
        sender=Sender(sender, "Ann"),
        chat=ChatRef(chat, kind),
        text="hi",
        received_at=0,
        **extra,
    )


def account(**overrides: Any) -> AccountConfig:
    return AccountConfig(channel="telegram", account_id="default", **overrides)


def test_an_unknown_dm_sender_is_offered_pairing_by_default() -> None:
    assert decide_access(message(), account(), set()).verdict is Verdict.PAIR


def test_an_approved_sender_is_admitted() -> None:
    assert decide_access(message(), account(), {"7"}).verdict is Verdict.ADMIT


def test_allow_from_admits_without_pairing() -> None:
    assert decide_access(message(), account(allow_from=("7",)), set()).verdict is Verdict.ADMIT


def test_allowlist_policy_refuses_strangers() -> None:
    decision = decide_access(message(), account(dm_policy="allowlist"), set())
    assert decision.verdict is Verdict.REFUSE


def test_disabled_dms_refuse_even_approved_senders() -> None:
    decision = decide_access(message(), account(dm_policy="disabled"), {"7"})
    assert decision.verdict is Verdict.REFUSE


def test_open_dms_admit_anyone() -> None:
    assert decide_access(message(), account(dm_policy="open"), set()).verdict is Verdict.ADMIT


def test_a_group_outside_the_list_is_refused() -> None:
    group = message(kind=ChatKind.GROUP, chat="-1", mentioned=True)
    assert decide_access(group, account(groups=("-2",)), set()).verdict is Verdict.REFUSE


def test_an_allowed_group_without_mention_is_ignored() -> None:
    group = message(kind=ChatKind.GROUP, chat="-1")
    assert decide_access(group, account(groups=("-1",)), set()).verdict is Verdict.IGNORE


def test_an_allowed_group_with_mention_is_admitted() -> None:
    group = message(kind=ChatKind.GROUP, chat="-1", mentioned=True)
    assert decide_access(group, account(groups=("-1",)), set()).verdict is Verdict.ADMIT


def test_open_groups_without_required_mention_admit_everything() -> None:
    group = message(kind=ChatKind.GROUP, chat="-1")
    decision = decide_access(group, account(group_policy="open", require_mention=False), set())
    assert decision.verdict is Verdict.ADMIT


def test_codes_are_eight_upper_case_letters_and_digits() -> None:
    code = random_code()
    assert len(code) == 8 and code.isalnum() and code == code.upper()


def test_a_new_code_expires_after_an_hour() -> None:
    request = PairingBook().propose(message(), now=1000)
    assert request.new and request.code is not None
    assert request.code.expires_at == 1000 + HOUR


def test_a_sender_with_an_open_code_gets_no_second_one() -> None:
    book = PairingBook()
    first = book.propose(message(), 0)
    assert first.code is not None
    book.add(first.code)
    again = book.propose(message(), 10)
    assert not again.new and again.code == first.code


def test_at_most_three_codes_wait_per_account() -> None:
    book = PairingBook()
    for sender in "123":
        request = book.propose(message(sender=sender), 0)
        assert request.code is not None
        book.add(request.code)
    assert book.propose(message(sender="4"), 0).code is None


def test_an_expired_code_cannot_be_found_and_frees_its_slot() -> None:
    book = PairingBook()
    request = book.propose(message(), 0)
    assert request.code is not None
    book.add(request.code)
    assert book.find("telegram", request.code.code.lower(), 10) == request.code
    assert book.find("telegram", request.code.code, HOUR) is None
    assert book.expired(HOUR) == [request.code]


def test_a_colliding_code_is_drawn_again() -> None:
    codes = itertools.chain(["AAAAAAAA", "AAAAAAAA"], itertools.repeat("BBBBBBBB"))
    book = PairingBook(new_code=lambda: next(codes))
    first = book.propose(message(sender="1"), 0)
    assert first.code is not None
    book.add(first.code)
    second = book.propose(message(sender="2"), 0)
    assert second.code is not None and second.code.code == "BBBBBBBB"


def test_refusals_are_logged_once_per_sender_per_hour() -> None:
    log = RefusalLog()
    assert log.should_log("telegram", "default", "7", 0)
    assert not log.should_log("telegram", "default", "7", HOUR - 1)
    assert log.should_log("telegram", "default", "8", 1)
    assert log.should_log("telegram", "default", "7", HOUR)
