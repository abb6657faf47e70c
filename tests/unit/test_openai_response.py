"""The OpenAI-compatible responses without sockets: completions, chunks, SSE bytes."""

from __future__ import annotations

import orjson

from clawgate.protocol.openai_response import (
    SSE_DONE,
    ResponseStream,
    chat_chunk,
    chat_completion,
    response_object,
    sse,
)


def test_sse_event_is_one_data_line_and_a_blank_line() -> None:
    assert sse({"a": "b\nc"}) == b'data: {"a":"b\\nc"}\n\n'
    assert sse({"x": 1}, event="response.created") == b'event: response.created\ndata: {"x":1}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_completion_and_chunks_have_openais_members() -> None:
    common = {"completion_id": "chatcmpl-1", "created_s": 7, "model": "clawgate:main"}
    completion = chat_completion(**common, text="hi", stop_reason=None, usage=None)
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert completion["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    first = chat_chunk(**common, delta={"role": "assistant", "content": ""})
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["finish_reason"] is None
    last = chat_chunk(**common, finished=True, stop_reason="length")
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    usage = chat_chunk(**common, usage={"prompt_tokens": 3, "completion_tokens": 4})
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 7


def test_response_stream_numbers_events_and_completes_with_the_whole_text() -> None:
    template = response_object(
        response_id="resp_1",
        message_id="msg_1",
        created_s=1,
        model="clawgate:main",
        status="in_progress",
        instructions=None,
        user=None,
    )
    stream = ResponseStream(template, "msg_1")
    raw = stream.opening() + stream.delta("a") + stream.delta(" b") + stream.completed(None)
    events = [block.split(b"\n") for block in raw.split(b"\n\n") if block]
    kinds = [lines[0].removeprefix(b"event: ").decode() for lines in events]
    payloads = [orjson.loads(lines[1].removeprefix(b"data: ")) for lines in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [p["sequence_number"] for p in payloads] == list(range(10))
    assert all(p["type"] == kind for p, kind in zip(payloads, kinds, strict=True))
    done = payloads[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "a b"
