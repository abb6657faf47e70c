"""The OpenAI-compatible wire without sockets: request parsing, errors, chunks, SSE bytes."""

from __future__ import annotations

import orjson
import pytest

from clawgate.protocol.openai_wire import (
    SSE_DONE,
    Conversation,
    OpenAIError,
    ResponseStream,
    Turn,
    chat_chunk,
    chat_completion,
    error_body,
    parse_chat_request,
    parse_json,
    parse_responses_request,
    response_object,
    sse,
)


def _error(call: object, *args: object) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_error_body_is_openais_shape_with_nulls() -> None:
    assert error_body("bad") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}
    }


def test_sse_event_is_one_data_line_and_a_blank_line() -> None:
    assert sse({"a": "b\nc"}) == b'data: {"a":"b\\nc"}\n\n'
    assert sse({"x": 1}, event="response.created") == b'event: response.created\ndata: {"x":1}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_invalid_json_gets_openais_parse_message() -> None:
    error = _error(parse_json, b"{not json")
    assert error.status == 400 and error.message.startswith("We could not parse the JSON body")


def test_missing_messages_names_the_param() -> None:
    error = _error(parse_chat_request, {"model": "clawgate:main"})
    assert error.body()["error"] == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": "hi"}, "messages", "invalid_type"),
        ({"messages": []}, "messages", "invalid_value"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
            "unsupported_value",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role", "unsupported_value"),
        (
            {"messages": [{"role": "user", "content": "x"}], "stream": "yes"},
            "stream",
            "invalid_type",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n", "unsupported_value"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages", None),
    ],
)
def test_bad_chat_requests_name_the_param(body: dict[str, object], param: str, code: str) -> None:
    error = _error(parse_chat_request, body)
    assert (error.status, error.param, error.code) == (400, param, code)


def test_chat_request_splits_prompt_from_earlier_and_ignores_sampling_params() -> None:
    chat = parse_chat_request(
        {
            "model": "clawgate:main",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "two"},
                {"role": "user", "content": [{"type": "text", "text": "three"}]},
            ],
            "temperature": 0.3,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "alice",
        }
    )
    assert chat.conversation == Conversation(
        "three", (Turn("system", "be brief"), Turn("user", "one"), Turn("assistant", "two"))
    )
    assert (chat.stream, chat.include_usage, chat.user) == (True, True, "alice")


def test_responses_request_takes_a_string_or_messages() -> None:
    assert parse_responses_request({"input": "hi"}).conversation == Conversation("hi", ())
    asked = parse_responses_request(
        {
            "input": [
                {"role": "user", "content": "a"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "b"}],
                },
            ],
            "instructions": "sys",
        }
    )
    assert asked.conversation == Conversation("b", (Turn("user", "a"),))
    assert asked.instructions == "sys"
    assert _error(parse_responses_request, {}).param == "input"
    assert (
        _error(parse_responses_request, {"input": "x", "previous_response_id": "r"}).status == 400
    )


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
