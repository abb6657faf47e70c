"""Responses of the OpenAI-compatible HTTP API, without I/O: JSON objects and SSE bytes out.

Shapes follow OpenAI's documented Chat Completions and Responses APIs, because clients
(the `openai` SDKs, Open WebUI, editors) break on small differences:

- `chat.completion` and, streamed, `chat.completion.chunk` objects as `data: <json>` SSE
  events ending with `data: [DONE]`; the first chunk carries the role, the last the
  `finish_reason`, and with `stream_options.include_usage` one more holds `usage`;
- a `response` object and, streamed, the `response.*` events (`event: <type>` and
  `data: <json>`, each with a `sequence_number`), with no `[DONE]`, as OpenAI streams them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import orjson

from .openai_errors import SERVER_ERROR, OpenAIError

__all__ = [
    "SSE_DONE",
    "ResponseStream",
    "chat_chunk",
    "chat_completion",
    "chat_usage",
    "model_object",
    "response_object",
    "response_usage",
    "sse",
]

SSE_DONE: Final = b"data: [DONE]\n\n"


def sse(payload: Any, event: str | None = None) -> bytes:
    """Return one Server-Sent Event holding `payload` as JSON on a single `data:` line."""
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return data if event is None else b"event: " + event.encode() + b"\n" + data


# -- models -----------------------------------------------------------------------------


def model_object(model_id: str, created_s: int) -> dict[str, Any]:
    """Return one entry of `GET /v1/models`."""
    return {"id": model_id, "object": "model", "created": created_s, "owned_by": "clawgate"}


# -- chat completions -------------------------------------------------------------------


def _finish_reason(stop_reason: str | None) -> str:
    if stop_reason in ("length", "content_filter", "tool_calls"):
        return stop_reason
    return "stop"


def chat_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Return Chat Completions usage; counts a backend did not report are 0."""
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def chat_completion(
    *,
    completion_id: str,
    created_s: int,
    model: str,
    text: str,
    stop_reason: str | None,
    usage: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Return a `chat.completion` object holding the agent's whole answer."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created_s,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": _finish_reason(stop_reason),
            }
        ],
        "usage": chat_usage(usage),
        "system_fingerprint": None,
    }


def chat_chunk(
    *,
    completion_id: str,
    created_s: int,
    model: str,
    delta: Mapping[str, Any] | None = None,
    stop_reason: str | None = None,
    finished: bool = False,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return one `chat.completion.chunk`.

    A chunk carries a `delta` (the role first, then text), or with `finished` the empty
    delta and the `finish_reason`, or with `usage` no choices at all (the usage chunk).
    """
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created_s,
        "model": model,
        "system_fingerprint": None,
    }
    if usage is not None:
        chunk["choices"] = []
        chunk["usage"] = chat_usage(usage)
        return chunk
    choice: dict[str, Any] = {
        "index": 0,
        "delta": dict(delta or {}),
        "logprobs": None,
        "finish_reason": _finish_reason(stop_reason) if finished else None,
    }
    chunk["choices"] = [choice]
    return chunk


# -- responses --------------------------------------------------------------------------


def response_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return Responses API usage; counts a backend did not report are 0."""
    counts = chat_usage(usage)
    return {
        "input_tokens": counts["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": counts["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counts["total_tokens"],
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(message_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_output_text(text)]
    return {
        "type": "message",
        "id": message_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def response_object(
    *,
    response_id: str,
    message_id: str,
    created_s: int,
    model: str,
    status: Literal["in_progress", "completed", "failed"],
    instructions: str | None,
    user: str | None,
    text: str | None = None,
    usage: Mapping[str, Any] | None = None,
    error: OpenAIError | None = None,
) -> dict[str, Any]:
    """Return a `response` object; its output holds the answer once there is text."""
    output = [] if text is None else [_message_item(message_id, text, "completed")]
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_s,
        "status": status,
        "error": None if error is None else {"code": SERVER_ERROR, "message": error.message},
        "incomplete_details": None,
        "instructions": instructions,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": None if status != "completed" else response_usage(usage),
        "user": user,
        "metadata": {},
    }


class ResponseStream:
    """Build the SSE events of one streamed response, numbering them as it goes."""

    def __init__(self, template: Mapping[str, Any], message_id: str) -> None:
        """Stream the response described by `template` (a `response_object` in progress)."""
        self._template = dict(template)
        self._message_id = message_id
        self._sequence = 0
        self._text = ""

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse(payload, event=kind)

    def _response(self, **changes: Any) -> dict[str, Any]:
        return {**self._template, **changes}

    def opening(self) -> bytes:
        """Return `response.created`, `response.in_progress` and the empty message's start."""
        where = {"item_id": self._message_id, "output_index": 0, "content_index": 0}
        return b"".join(
            (
                self._event("response.created", response=self._response()),
                self._event("response.in_progress", response=self._response()),
                self._event(
                    "response.output_item.added",
                    output_index=0,
                    item=_message_item(self._message_id, None, "in_progress"),
                ),
                self._event("response.content_part.added", **where, part=_output_text("")),
            )
        )

    def delta(self, text: str) -> bytes:
        """Return a `response.output_text.delta` adding `text`."""
        self._text += text
        return self._event(
            "response.output_text.delta",
            item_id=self._message_id,
            output_index=0,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def completed(self, usage: Mapping[str, Any] | None) -> bytes:
        """Return the closing events, ending with `response.completed`."""
        text, where = self._text, {"item_id": self._message_id, "output_index": 0}
        done = self._response(
            status="completed",
            output=[_message_item(self._message_id, text, "completed")],
            usage=response_usage(usage),
        )
        return b"".join(
            (
                self._event(
                    "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
                ),
                self._event(
                    "response.content_part.done", **where, content_index=0, part=_output_text(text)
                ),
                self._event(
                    "response.output_item.done",
                    output_index=0,
                    item=_message_item(self._message_id, text, "completed"),
                ),
                self._event("response.completed", response=done),
            )
        )

    def failed(self, error: OpenAIError) -> bytes:
        """Return `response.failed` carrying the error."""
        failed = self._response(
            status="failed", error={"code": SERVER_ERROR, "message": error.message}
        )
        return self._event("response.failed", response=failed)
