"""The pure exec approval rules: argv patterns, policy decisions, the approval book."""

from __future__ import annotations

from clawgate.protocol.exec_approvals import (
    ApprovalBook,
    ExecDecision,
    ExecMode,
    ExecPolicy,
    exact_pattern,
    pattern_matches,
)


def test_pattern_globs_match_argument_by_argument() -> None:
    assert pattern_matches(("ls", "-*"), ["ls", "-la"])
    assert not pattern_matches(("ls", "-*"), ["ls", "-la", "/"])
    assert pattern_matches(("git", "**"), ["git", "status", "--short"])
    assert not pattern_matches(("git", "**"), ["gitk"])


def test_exact_pattern_matches_only_that_argv() -> None:
    pattern = exact_pattern(["echo", "*", "[x]?"])
    assert pattern_matches(pattern, ["echo", "*", "[x]?"])
    assert not pattern_matches(pattern, ["echo", "anything", "[x]?"])


def test_default_policy_asks() -> None:
    assert ExecPolicy().decide(["id"]) is ExecDecision.ASK


def test_modes_decide() -> None:
    allow = (("id",),)
    assert ExecPolicy(ExecMode.DENY, allow).decide(["id"]) is ExecDecision.DENY
    assert ExecPolicy(ExecMode.ALLOWLIST, allow).decide(["id"]) is ExecDecision.ALLOW
    assert ExecPolicy(ExecMode.ALLOWLIST, allow).decide(["ls"]) is ExecDecision.DENY
    assert ExecPolicy(ExecMode.ASK, allow).decide(["id"]) is ExecDecision.ALLOW
    assert ExecPolicy(ExecMode.FULL).decide(["anything"]) is ExecDecision.ALLOW


def test_empty_argv_never_runs() -> None:
    assert ExecPolicy(ExecMode.ASK, ((),)).decide([]) is ExecDecision.DENY


def test_allowing_adds_the_exact_argv_once() -> None:
    policy = ExecPolicy().allowing(["uname", "-a"], 5).allowing(["uname", "-a"], 6)
    assert policy.allowlist == (("uname", "-a"),) and policy.updated_at_ms == 5
    assert policy.decide(["uname", "-a"]) is ExecDecision.ALLOW


def test_book_expires_requests_at_their_deadline() -> None:
    book = ApprovalBook(ttl_ms=100, ids=iter(["a", "b"]).__next__)
    book.open("n", ["x"], None, "op", now_ms=0)
    book.open("n", ["y"], None, "op", now_ms=50)
    assert [r.id for r in book.expired(100)] == ["a"]
    assert book.resolve("b").argv == ("y",)
