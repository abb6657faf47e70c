"""Requests of the OpenAI-compatible HTTP API, without I/O: JSON bodies in, parsed requests out.

Bodies are checked as OpenAI's documented Chat Completions and Responses APIs check them,
and a refusal names the offending `param`, because clients (the `openai` SDKs, Open WebUI,
editors) rely on it.

A request's messages become one agent run: the last user message is the run's prompt,
the messages before it are the conversation so far (`Conversation.earlier`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from .nesting import is_depth_error, nesting_error, nesting_exceeds
from .openai_errors import (
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING_REQUIRED_PARAMETER,
    UNSUPPORTED_VALUE,
    OpenAIError,
)

__all__ = [
    "ChatRequest",
    "Conversation",
    "ResponsesRequest",
    "Turn",
    "parse_chat_request",
    "parse_json",
    "parse_responses_request",
]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, reduced to its text."""

    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """The run's prompt (the last user message) and the messages before it."""

    prompt: str
    earlier: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A parsed `POST /v1/chat/completions`."""

    model: str | None
    conversation: Conversation
    stream: bool
    include_usage: bool
    user: str | None


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A parsed `POST /v1/responses`."""

    model: str | None
    conversation: Conversation
    stream: bool
    user: str | None
    instructions: str | None


class _Body(BaseModel):
    # Unknown members (temperature, max_tokens, tools, ...) are accepted and ignored, as
    # clients send them by default; strict types refuse `"stream": "yes"` as OpenAI does.
    model_config = ConfigDict(extra="ignore", strict=True)


class _ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _StreamOptions(_Body):
    include_usage: bool | None = None


class _ChatBody(_Body):
    model: str | None = None
    messages: list[_ChatMessage]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    user: str | None = None
    n: int | None = None


class _InputMessage(_Body):
    type: Literal["message"] | None = None
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]


class _ResponsesBody(_Body):
    model: str | None = None
    input: str | list[_InputMessage]
    instructions: str | None = None
    stream: bool | None = None
    user: str | None = None
    previous_response_id: str | None = None


_USER_MAX: Final = 256
_TEXT_PARTS: Final = frozenset({"text", "input_text", "output_text"})


def parse_json(raw: bytes) -> Any:
    """Parse a request body.

    Raises:
        OpenAIError: 400, the body is not JSON (OpenAI's wording) or nests too deep.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise OpenAIError(400, f"The request body is {nesting_error()}.") from None
        raise OpenAIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        ) from None
    if nesting_exceeds(data):  # before pydantic or anything else recursive sees it
        raise OpenAIError(400, f"The request body is {nesting_error()}.")
    return data


def _param(location: Iterable[int | str]) -> str:
    """Render a location the way OpenAI names params: `messages[0].content`."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _validation_error(error: ErrorDetails) -> OpenAIError:
    # pydantic adds a union member's name (`str`, `list[...]`) to the location: drop it.
    param = _param(p for p in error["loc"] if isinstance(p, int) or (p != "str" and "[" not in p))
    if error["type"] == "missing":
        return OpenAIError(
            400,
            f"Missing required parameter: '{param}'.",
            param=param,
            code=MISSING_REQUIRED_PARAMETER,
        )
    if error["type"] == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        return OpenAIError(
            400,
            f"Invalid value: {error.get('input')!r}. Supported values are: {expected}.",
            param=param,
            code=INVALID_VALUE,
        )
    return OpenAIError(
        400, f"Invalid type for '{param}': {error['msg'].lower()}.", param=param, code=INVALID_TYPE
    )


def _validate(model: type[_Body], data: Any) -> Any:
    if not isinstance(data, dict):
        raise OpenAIError(400, "The request body must be a JSON object.", code=INVALID_TYPE)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc.errors(include_url=False)[0]) from None


def _text_of(content: str | list[dict[str, Any]] | None, param: str) -> str:
    """Return a message's text; only text content parts can reach the agent."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for index, part in enumerate(content):
        text = part.get("text")
        if part.get("type") not in _TEXT_PARTS or not isinstance(text, str):
            raise OpenAIError(
                400,
                f"Only text content parts are supported; '{part.get('type')}' is not.",
                param=f"{param}[{index}]",
                code=UNSUPPORTED_VALUE,
            )
        texts.append(text)
    return "\n".join(texts)


def _conversation(turns: list[Turn], param: str) -> Conversation:
    """Split the turns into the prompt (the last user message) and what came before it."""
    if not turns or turns[-1].role != "user":
        raise OpenAIError(
            400,
            "The last message must come from the user: it is what the agent answers.",
            param=param,
        )
    if not turns[-1].text.strip():
        raise OpenAIError(400, "The last user message has no text.", param=param)
    return Conversation(turns[-1].text, tuple(turns[:-1]))


def _role(role: str) -> Role:
    # `developer` is the newer name of `system`.
    return "system" if role == "developer" else role  # type: ignore[return-value]


def _user(user: str | None) -> str | None:
    if user is not None and len(user) > _USER_MAX:
        raise OpenAIError(
            400, f"'user' is longer than {_USER_MAX} characters.", param="user", code=INVALID_VALUE
        )
    return user or None


def parse_chat_request(data: Any) -> ChatRequest:
    """Validate a Chat Completions request body.

    Raises:
        OpenAIError: 400 with the offending `param`.
    """
    body: _ChatBody = _validate(_ChatBody, data)
    if body.n is not None and body.n != 1:
        raise OpenAIError(400, "Only n=1 is supported.", param="n", code=UNSUPPORTED_VALUE)
    if not body.messages:
        raise OpenAIError(
            400, "'messages' must hold at least one message.", param="messages", code=INVALID_VALUE
        )
    turns = []
    for index, message in enumerate(body.messages):
        param = f"messages[{index}]"
        if message.role in ("tool", "function"):
            raise OpenAIError(
                400,
                f"Messages with role '{message.role}' are not supported: the agent runs its "
                "own tools.",
                param=f"{param}.role",
                code=UNSUPPORTED_VALUE,
            )
        turns.append(Turn(_role(message.role), _text_of(message.content, f"{param}.content")))
    options = body.stream_options
    return ChatRequest(
        model=body.model,
        conversation=_conversation(turns, "messages"),
        stream=bool(body.stream),
        include_usage=bool(body.stream and options is not None and options.include_usage),
        user=_user(body.user),
    )


def parse_responses_request(data: Any) -> ResponsesRequest:
    """Validate a Responses API request body (text input and output only).

    Raises:
        OpenAIError: 400 with the offending `param`.
    """
    body: _ResponsesBody = _validate(_ResponsesBody, data)
    if body.previous_response_id is not None:
        raise OpenAIError(
            400,
            "previous_response_id is not supported: keep a conversation with the 'user' "
            "field or the x-clawgate-session header.",
            param="previous_response_id",
            code=UNSUPPORTED_VALUE,
        )
    if isinstance(body.input, str):
        turns = [Turn("user", body.input)]
    else:
        turns = [
            Turn(_role(item.role), _text_of(item.content, f"input[{index}].content"))
            for index, item in enumerate(body.input)
        ]
    return ResponsesRequest(
        model=body.model,
        conversation=_conversation(turns, "input"),
        stream=bool(body.stream),
        user=_user(body.user),
        instructions=body.instructions or None,
    )
