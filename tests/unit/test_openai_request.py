"""The OpenAI-compatible request parsing without sockets: bodies in, requests or errors out."""

from __future__ import annotations

import pytest

from clawgate.protocol.openai_errors import OpenAIError
from clawgate.protocol.openai_request import (
    Conversation,
    Turn,
    parse_chat_request,
    parse_json,
    parse_responses_request,
)


def _error(call: object, *args: object) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


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
