"""CommandBook: the offline queue's rules (spec §2.10, §4.2 to §4.5) without I/O."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from clawgate.commands.model import (
    EXPIRED,
    PLUGIN_DISCONNECTED,
    QUEUE_FULL,
    SECRETS_UNAVAILABLE,
    Command,
    CommandError,
    CommandState,
)
from clawgate.commands.queue import (
    RETENTION_MS,
    CommandBook,
    Outcome,
    UnknownCommand,
    execution_timeout_ms,
)

T0 = 1_000_000
TTL = 300_000
SECRET = "hunter2-secret-value"


def cmd(cid: str, target: str = "capability:notes", **changes: Any) -> Command:
    base = Command(command_id=cid, name="notes.create", target_key=target, issued_at=T0)
    return base.evolve(**changes)


def offline(book: CommandBook, command: Command, now: int = T0, **secrets: str) -> Outcome:
    return book.submit(command, secrets, live_route=False, has_capacity=False, now=now).outcome


@pytest.fixture
def book() -> CommandBook:
    return CommandBook(ttl_ms=TTL)


def test_queues_are_fifo_per_target(book: CommandBook) -> None:
    for cid, target in [("a1", "plugin:a"), ("b1", "plugin:b"), ("a2", "plugin:a")]:
        assert offline(book, cmd(cid, target)) is Outcome.QUEUED
    assert [c.command_id for c in book.queued()] == ["a1", "a2", "b1"]
    assert book.by_target() == {"plugin:a": 2, "plugin:b": 1}
    assert book.depth() == 3
    assert book.queue_position("a2") == 1


def test_heads_are_dispatched_in_arrival_order(book: CommandBook) -> None:
    for cid in ["c1", "c2", "c3"]:
        offline(book, cmd(cid))
    started = []
    while (head := book.next_for("capability:notes")) is not None:
        started.append(book.start(head.command_id, T0 + 1))
    assert [c.command_id for c in started] == ["c1", "c2", "c3"]
    assert all(c.state is CommandState.ACCEPTED and c.attempt == 1 for c in started)
    assert book.depth() == 0


def test_start_refuses_a_command_that_is_not_the_head(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    offline(book, cmd("c2"))
    with pytest.raises(ValueError, match="head"):
        book.start("c2", T0)


def test_live_route_with_capacity_and_empty_queue_accepts_at_once(book: CommandBook) -> None:
    decision = book.submit(
        cmd("c1", secret_names=("k",)), {"k": SECRET}, live_route=True, has_capacity=True, now=T0
    )
    assert decision.outcome is Outcome.ACCEPTED and decision.dispatch
    assert decision.command.attempt == 1
    assert book.secrets_for("c1") == {"k": SECRET}


def test_live_route_behind_a_non_empty_queue_still_queues(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    decision = book.submit(cmd("c2"), {}, live_route=True, has_capacity=True, now=T0)
    assert decision.outcome is Outcome.QUEUED and decision.queue_position == 1


def test_live_route_without_capacity_queues(book: CommandBook) -> None:
    decision = book.submit(cmd("c1"), {}, live_route=True, has_capacity=False, now=T0)
    assert decision.outcome is Outcome.QUEUED


def test_duplicate_returns_the_first_record_unchanged(book: CommandBook) -> None:
    book.submit(cmd("c1"), {}, live_route=True, has_capacity=True, now=T0)
    done = book.complete("c1", T0 + 5, result={"ok": 1})
    again = book.submit(cmd("c1", name="other"), {}, live_route=True, has_capacity=True, now=T0 + 9)
    assert again.outcome is Outcome.DUPLICATE and not again.changed
    assert again.command == done
    assert again.command.result == {"ok": 1}


def test_duplicate_of_a_queued_command_keeps_one_queue_entry(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    assert offline(book, cmd("c1")) is Outcome.DUPLICATE
    assert book.depth() == 1


def test_queue_deadline_is_issued_at_plus_ttl(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    assert book.expire_due(T0 + TTL - 1) == []
    (expired,) = book.expire_due(T0 + TTL)
    assert expired.state is CommandState.EXPIRED
    assert expired.error is not None and expired.error.code == EXPIRED
    assert expired.error.details == {"reason": "target_offline"}
    assert book.depth() == 0


def test_ttl_is_clamped_to_expires_at(book: CommandBook) -> None:
    offline(book, cmd("c1", expires_at=T0 + 10))
    assert book.get("c1") is not None and book.get("c1").deadline == T0 + 10  # type: ignore[union-attr]
    (expired,) = book.expire_due(T0 + 10)
    assert expired.error is not None and expired.error.details == {"reason": "deadline"}


def test_a_command_past_its_deadline_on_arrival_expires(book: CommandBook) -> None:
    decision = book.submit(
        cmd("c1", secret_names=("k",)),
        {"k": SECRET},
        live_route=True,
        has_capacity=True,
        now=T0 + TTL,
    )
    assert decision.outcome is Outcome.EXPIRED
    assert decision.command.error is not None
    assert decision.command.error.details == {"reason": "target_offline"}
    assert book.secrets_for("c1") == {}


def test_expiry_drops_secrets(book: CommandBook) -> None:
    offline(book, cmd("c1", secret_names=("k",)), k=SECRET)
    book.expire_due(T0 + TTL)
    assert book.secrets_for("c1") == {}


def test_per_target_cap_rejects_with_queue_full() -> None:
    book = CommandBook(ttl_ms=TTL, max_per_target=2)
    offline(book, cmd("c1"))
    offline(book, cmd("c2"))
    decision = book.submit(cmd("c3"), {}, live_route=False, has_capacity=False, now=T0)
    assert decision.outcome is Outcome.REJECTED
    assert decision.command.error == CommandError(QUEUE_FULL, "command queue is full", True)
    assert offline(book, cmd("d1", "plugin:other")) is Outcome.QUEUED


def test_total_cap_rejects_with_queue_full() -> None:
    book = CommandBook(ttl_ms=TTL, max_total=2)
    offline(book, cmd("c1", "plugin:a"))
    offline(book, cmd("c2", "plugin:b"))
    assert offline(book, cmd("c3", "plugin:c")) is Outcome.REJECTED
    assert book.depth() == 2


def test_caps_do_not_count_accepted_commands() -> None:
    book = CommandBook(ttl_ms=TTL, max_total=1)
    book.submit(cmd("c1"), {}, live_route=True, has_capacity=True, now=T0)
    assert offline(book, cmd("c2")) is Outcome.QUEUED


def test_complete_records_exactly_one_terminal_state(book: CommandBook) -> None:
    book.submit(cmd("c1"), {}, live_route=True, has_capacity=True, now=T0)
    error = CommandError("TIMEOUT", "no reply", retryable=True)
    failed = book.complete("c1", T0 + 1, error=error)
    assert failed is not None and failed.state is CommandState.FAILED
    assert book.complete("c1", T0 + 2, result="late") is None
    assert book.get("c1") == failed


def test_complete_of_an_unknown_command_raises(book: CommandBook) -> None:
    with pytest.raises(UnknownCommand):
        book.complete("nope", T0)


def test_complete_redacts_secrets_from_result_and_error(book: CommandBook) -> None:
    for cid in ("c1", "c2"):
        book.submit(
            cmd(cid, secret_names=("k",)),
            {"k": SECRET},
            live_route=True,
            has_capacity=True,
            now=T0,
        )
    ok = book.complete("c1", T0, result={"echo": f"x{SECRET}y", "n": [SECRET]})
    bad = book.complete("c2", T0, error=CommandError("E", f"bad {SECRET}", False))
    assert ok is not None and bad is not None
    assert SECRET not in json.dumps(ok.to_json()) + json.dumps(bad.to_json())
    assert ok.result == {"echo": "x[redacted]y", "n": ["[redacted]"]}
    assert book.secrets_for("c1") == {}


def test_disconnect_requeues_at_the_head_with_attempt_plus_one(book: CommandBook) -> None:
    for cid in ("c1", "c2", "c3", "c4"):
        offline(book, cmd(cid))
    book.start("c1", T0)
    book.start("c2", T0)
    changed = book.plugin_disconnected(["c2", "c1"], T0 + 1)
    assert [(c.command_id, c.state, c.attempt) for c in changed] == [
        ("c1", CommandState.QUEUED, 2),
        ("c2", CommandState.QUEUED, 2),
    ]
    assert [c.command_id for c in book.queued()] == ["c1", "c2", "c3", "c4"]
    assert book.start("c1", T0 + 2).attempt == 2


def test_disconnect_keeps_secrets_of_a_requeued_command(book: CommandBook) -> None:
    book.submit(
        cmd("c1", secret_names=("k",)), {"k": SECRET}, live_route=True, has_capacity=True, now=T0
    )
    book.plugin_disconnected(["c1"], T0 + 1)
    assert book.secrets_for("c1") == {"k": SECRET}


def test_disconnect_fails_the_command_after_three_attempts(book: CommandBook) -> None:
    book.submit(cmd("c1"), {}, live_route=True, has_capacity=True, now=T0)
    for attempt in (2, 3):
        (requeued,) = book.plugin_disconnected(["c1"], T0)
        assert requeued.attempt == attempt
        book.start("c1", T0)
    (failed,) = book.plugin_disconnected(["c1"], T0)
    assert failed.state is CommandState.FAILED and failed.attempt == 3
    assert failed.error == CommandError(PLUGIN_DISCONNECTED, "the plugin disconnected", True)


def test_disconnect_after_the_deadline_fails_the_command(book: CommandBook) -> None:
    book.submit(cmd("c1"), {}, live_route=True, has_capacity=True, now=T0)
    (failed,) = book.plugin_disconnected(["c1"], T0 + TTL)
    assert failed.state is CommandState.FAILED


def test_disconnect_ignores_commands_that_are_not_in_flight(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    assert book.plugin_disconnected(["c1"], T0) == []


def test_terminal_records_are_retained_for_24h_past_expires_at(book: CommandBook) -> None:
    book.submit(cmd("c1", expires_at=T0 + 1000), {}, live_route=True, has_capacity=True, now=T0)
    book.complete("c1", T0 + 10, result=None)
    end = T0 + 1000 + RETENTION_MS
    assert [c.command_id for c in book.retained(end - 1)] == ["c1"]
    assert book.prune(end - 1) == []
    assert book.prune(end) == ["c1"]
    assert book.get("c1") is None and book.retained(end) == []


def test_retention_counts_from_the_terminal_time_when_later(book: CommandBook) -> None:
    book.submit(cmd("c1", expires_at=T0 + 1000), {}, live_route=True, has_capacity=True, now=T0)
    book.complete("c1", T0 + 5000)
    assert book.prune(T0 + 5000 + RETENTION_MS - 1) == []
    assert book.prune(T0 + 5000 + RETENTION_MS) == ["c1"]


def test_prune_keeps_live_commands(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    assert book.prune(T0 + 10 * RETENTION_MS) == []


def test_commands_never_hold_secret_values(book: CommandBook) -> None:
    command = cmd("c1", secret_names=("k",))
    decision = book.submit(command, {"k": SECRET}, live_route=False, has_capacity=False, now=T0)
    for record in (decision.command, book.get("c1")):
        assert SECRET not in json.dumps(dataclasses.asdict(record), default=str)  # type: ignore[arg-type]
        assert SECRET not in repr(record)


def test_secret_names_must_match_the_values(book: CommandBook) -> None:
    with pytest.raises(ValueError, match="secret names"):
        offline(book, cmd("c1"), k=SECRET)


def test_reject_records_a_terminal_rejection_once(book: CommandBook) -> None:
    error = CommandError("NOT_FOUND", "unknown integration", False)
    assert book.reject(cmd("c1"), error, T0).outcome is Outcome.REJECTED
    assert book.reject(cmd("c1"), error, T0).outcome is Outcome.DUPLICATE
    assert offline(book, cmd("c1")) is Outcome.DUPLICATE


def test_mark_ack_sent_only_changes_unacked_terminal_records(book: CommandBook) -> None:
    book.reject(cmd("c1"), CommandError("X", "x", False), T0)
    offline(book, cmd("c2"))
    assert [c.command_id for c in book.unacked()] == ["c1"]
    assert book.mark_ack_sent("c2", T0) is None
    marked = book.mark_ack_sent("c1", T0)
    assert marked is not None and marked.ack_sent
    assert book.mark_ack_sent("c1", T0) is None and book.unacked() == []


# -- recovery (§4.5): one test per table row --------------------------------------------------


def persisted(cid: str, state: CommandState, position: int, **changes: Any) -> Command:
    return cmd(cid, state=state, position=position, deadline=T0 + TTL, **changes)


def test_recovery_expires_any_record_past_its_deadline(book: CommandBook) -> None:
    records = [
        persisted("q", CommandState.QUEUED, 1, secret_names=("k",)),
        persisted("a", CommandState.ACCEPTED, 2, attempt=1),
    ]
    changed = book.load(records, T0 + TTL)
    assert {c.command_id: c.state for c in changed} == {
        "q": CommandState.EXPIRED,
        "a": CommandState.EXPIRED,
    }


def test_recovery_fails_records_with_secret_names(book: CommandBook) -> None:
    records = [
        persisted("q", CommandState.QUEUED, 1, secret_names=("k",)),
        persisted("a", CommandState.ACCEPTED, 2, attempt=1, secret_names=("k",)),
    ]
    changed = book.load(records, T0 + 1)
    assert [c.state for c in changed] == [CommandState.FAILED, CommandState.FAILED]
    assert all(
        c.error == CommandError(SECRETS_UNAVAILABLE, c.error.message, True)  # type: ignore[union-attr]
        for c in changed
    )
    assert book.depth() == 0


def test_recovery_keeps_queued_records_in_order_with_their_deadline(book: CommandBook) -> None:
    records = [
        persisted("c2", CommandState.QUEUED, 5),
        persisted("c1", CommandState.QUEUED, 3),
        persisted("c3", CommandState.QUEUED, 7, target_key="plugin:x"),
    ]
    assert book.load(records, T0 + 1) == []
    assert [c.command_id for c in book.queued()] == ["c1", "c2", "c3"]
    assert book.get("c1").deadline == T0 + TTL  # type: ignore[union-attr]
    assert offline(book, cmd("c4"), now=T0 + 2) is Outcome.QUEUED
    assert [c.command_id for c in book.queued()][:3] == ["c1", "c2", "c4"]


def test_recovery_requeues_interrupted_records_at_the_head(book: CommandBook) -> None:
    records = [
        persisted("q", CommandState.QUEUED, 4),
        persisted("a", CommandState.ACCEPTED, 2, attempt=1),
    ]
    (changed,) = book.load(records, T0 + 1)
    assert (changed.command_id, changed.state, changed.attempt) == ("a", CommandState.QUEUED, 2)
    assert [c.command_id for c in book.queued()] == ["a", "q"]


def test_recovery_fails_interrupted_records_after_three_attempts(book: CommandBook) -> None:
    (changed,) = book.load([persisted("a", CommandState.ACCEPTED, 1, attempt=3)], T0 + 1)
    assert changed.state is CommandState.FAILED
    assert changed.error is not None and changed.error.code == PLUGIN_DISCONNECTED


def test_recovery_keeps_terminal_records_for_dedupe(book: CommandBook) -> None:
    done = persisted("d", CommandState.SUCCEEDED, 1, result=7, terminal_at=T0)
    assert book.load([done], T0 + 1) == []
    assert offline(book, cmd("d"), now=T0 + 2) is Outcome.DUPLICATE


def test_load_refuses_a_non_empty_book(book: CommandBook) -> None:
    offline(book, cmd("c1"))
    with pytest.raises(ValueError, match="empty"):
        book.load([], T0)


def test_execution_timeout_prefers_command_then_manifest_then_default() -> None:
    assert execution_timeout_ms(cmd("c", timeout_ms=5), T0, manifest_timeout_ms=9) == 5
    assert execution_timeout_ms(cmd("c"), T0, manifest_timeout_ms=9) == 9
    assert execution_timeout_ms(cmd("c"), T0) == 30_000


def test_execution_timeout_is_capped_by_expires_at() -> None:
    assert execution_timeout_ms(cmd("c", expires_at=T0 + 100), T0) == 100
    assert execution_timeout_ms(cmd("c", expires_at=T0 - 100), T0) == 0
