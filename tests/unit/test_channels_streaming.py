"""When a streamed reply is posted, edited and continued (the pure machine; time passed in)."""

from __future__ import annotations

import itertools

from clawgate.channels.base import EditsText
from clawgate.channels.chunking import split_text
from clawgate.channels.irc import IrcAdapter
from clawgate.channels.slack import SlackAdapter
from clawgate.channels.streaming import Edit, Post, ReplyStreamMachine, StreamAction
from clawgate.channels.telegram import TelegramAdapter
from clawgate.channels.webchat import WebChatAdapter


def play(machine: ReplyStreamMachine, now: float) -> list[StreamAction]:
    """Do what the machine asks at `now`, as the outbox would (ids m0, m1, ...)."""
    actions = machine.next(now)
    for action in actions:
        if isinstance(action, Post):
            machine.posted(action.index, f"m{action.index}", action.text, now)
        else:
            machine.edited(action.index, action.text, now)
    return actions


def test_nothing_is_posted_before_some_text_exists() -> None:
    machine = ReplyStreamMachine(max_text=100)
    machine.update("  \n")
    assert machine.next(0.0) == [] and machine.wake_at() is None


def test_the_first_text_is_posted_at_once() -> None:
    machine = ReplyStreamMachine(max_text=100)
    machine.update("Hello")
    assert machine.next(0.0) == [Post(0, "Hello")]


def test_more_text_within_a_second_of_the_post_waits_for_the_second() -> None:
    machine = ReplyStreamMachine(max_text=100)
    machine.update("Hello")
    play(machine, 0.0)
    machine.update("Hello there")
    assert machine.next(0.5) == [] and machine.wake_at() == 1.0


def test_a_due_edit_sends_only_the_newest_text() -> None:
    machine = ReplyStreamMachine(max_text=100)
    machine.update("Hello")
    play(machine, 0.0)
    machine.update("Hello there")
    machine.update("Hello there, world")
    assert machine.next(1.0) == [Edit(0, "m0", "Hello there, world")]


def test_edits_of_one_message_are_at_least_a_second_apart() -> None:
    machine = ReplyStreamMachine(max_text=100)
    machine.update("a")
    play(machine, 0.0)
    times = []
    for step in range(1, 40):
        now = step * 0.1
        machine.update("a" + " b" * step)
        if play(machine, now):
            times.append(now)
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times))
    assert len(times) >= 3


def test_text_past_max_text_continues_in_a_new_message_at_once() -> None:
    machine = ReplyStreamMachine(max_text=40)
    machine.update("first paragraph here")
    play(machine, 0.0)
    machine.update("first paragraph here\n\nsecond paragraph goes on and on")
    actions = machine.next(0.2)
    assert actions == [Post(1, "second paragraph goes on and on")]


def test_the_end_brings_every_message_its_final_text_and_then_done() -> None:
    machine = ReplyStreamMachine(max_text=40)
    machine.update("first")
    play(machine, 0.0)
    final = "first paragraph here\n\nsecond paragraph goes on and on"
    machine.end(final)
    play(machine, 0.1)
    assert not machine.done and machine.wake_at() == 1.0
    play(machine, 1.0)
    assert machine.done and machine.message_ids == ["m0", "m1"]


def test_a_streamed_reply_ends_as_the_same_chunks_as_one_sent_at_once() -> None:
    text = "```python\n" + "\n".join(f"line_{n} = {n}" for n in range(60)) + "\n```\nafter"
    machine = ReplyStreamMachine(max_text=200)
    shown: dict[int, str] = {}
    now = 0.0
    for end in range(1, len(text) + 1, 7):
        machine.update(text[:end])
        now += 0.3
        for action in play(machine, now):
            shown[action.index] = action.text
    machine.end(text)
    while not machine.done:
        now += 0.3
        for action in play(machine, now):
            shown[action.index] = action.text
    assert [shown[i] for i in sorted(shown)] == split_text(text, 200)
    assert all(len(t) <= 200 for t in shown.values())


def test_an_update_after_the_end_is_ignored() -> None:
    machine = ReplyStreamMachine(max_text=100)
    machine.end("final")
    machine.update("final and more")
    assert machine.text == "final"


def test_the_rest_to_resend_starts_at_the_first_message_not_up_to_date() -> None:
    machine = ReplyStreamMachine(max_text=40)
    machine.update("first paragraph here")
    play(machine, 0.0)
    text = "first paragraph here and more\n\nsecond paragraph"
    machine.update(text)
    play(machine, 0.5)  # posts message 1; message 0's edit is not due yet
    assert machine.first_stale() == 0
    assert machine.rest_from(0).split() == text.split()


def test_only_adapters_that_edit_implement_edits_text() -> None:
    assert issubclass(SlackAdapter, EditsText) and issubclass(TelegramAdapter, EditsText)
    assert not issubclass(IrcAdapter, EditsText) and not issubclass(WebChatAdapter, EditsText)
