"""Builders for the `agent` and `chat` event payloads (spec §10.2, §10.3).

Pure: the relay hands in a run's state and gets the wire shapes back. Where protocol 3 and
4 differ (v4 deltas carry `deltaText`, and `replace` when the text was rewritten), both
shapes are returned from here, keyed by protocol.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "agent_event",
    "assistant_message",
    "chat_delta",
    "chat_terminal",
]

TerminalState = Literal["final", "aborted", "error"]


def agent_event(
    *,
    run_id: str,
    seq: int,
    stream: str,
    ts: int,
    data: dict[str, Any],
    session_key: str | None,
) -> dict[str, Any]:
    """Return an `agent` event payload (the same on protocol 3 and 4)."""
    return {
        "runId": run_id,
        "seq": seq,
        "stream": stream,
        "ts": ts,
        "data": data,
        "sessionKey": session_key,
    }


def assistant_message(text: str, timestamp: int) -> dict[str, Any]:
    """Return the assistant message a `chat` event carries."""
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "timestamp": timestamp,
    }


def chat_delta(
    *, run_id: str, session_key: str, seq: int, text: str, sent_text: str, now: int
) -> dict[int, dict[str, Any]]:
    """Return a `chat` delta per protocol; `sent_text` is what the last delta carried.

    Protocol 3 gets the whole text so far; protocol 4 also gets what is new since
    `sent_text`, or the whole text with `replace` when the text does not extend it.
    """
    base: dict[str, Any] = {
        "runId": run_id,
        "sessionKey": session_key,
        "seq": seq,
        "state": "delta",
        "message": assistant_message(text, now),
    }
    v4 = dict(base)
    if text.startswith(sent_text):
        v4["deltaText"] = text[len(sent_text) :]
    else:
        v4["deltaText"] = text
        v4["replace"] = True
    return {3: base, 4: v4}


def chat_terminal(
    *,
    run_id: str,
    session_key: str,
    seq: int,
    state: TerminalState,
    now: int,
    text: str = "",
    stop_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    error_message: str | None = None,
    error_kind: str | None = None,
) -> dict[str, Any]:
    """Return the last `chat` event of a run: `final`, `aborted` or `error`."""
    payload: dict[str, Any] = {"runId": run_id, "sessionKey": session_key, "seq": seq}
    payload["state"] = state
    if state == "final":
        payload["message"] = assistant_message(text, now)
        if stop_reason is not None:
            payload["stopReason"] = stop_reason
        if usage is not None:
            payload["usage"] = usage
    elif state == "error":
        payload["errorMessage"] = error_message or "the agent run failed"
        payload["errorKind"] = error_kind or "unknown"
    return payload
