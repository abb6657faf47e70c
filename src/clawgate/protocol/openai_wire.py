"""The OpenAI-compatible HTTP API's wire, without I/O: requests in, JSON and SSE bytes out.

Shapes follow OpenAI's documented Chat Completions and Responses APIs, because clients
(the `openai` SDKs, Open WebUI, editors) break on small differences:

- errors: `{"error": {"message", "type", "param", "code"}}`;
- `chat.completion` and, streamed, `chat.completion.chunk` objects as `data: <json>` SSE
  events ending with `data: [DONE]`; the first chunk carries the role, the last the
  `finish_reason`, and with `stream_options.include_usage` one more holds `usage`;
- a `response` object and, streamed, the `response.*` events (`event: <type>` and
  `data: <json>`, each with a `sequence_number`), with no `[DONE]`, as OpenAI streams them.

A request's messages become one agent run: the last user message is the run's prompt,
the messages before it are the conversation so far (`Conversation.earlier`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from .nesting import is_depth_error, nesting_error, nesting_exceeds

__all__ = [
    "INVALID_API_KEY",
    "INVALID_REQUEST_ERROR",
    "INVALID_TYPE",
    "INVALID_VALUE",
    "MISSING_REQUIRED_PARAMETER",
    "MODEL_NOT_FOUND",
    "RATE_LIMIT_ERROR",
    "RATE_LIMIT_EXCEEDED",
    "REQUEST_TOO_LARGE",
    "RUN_ABORTED",
    "RUN_TIMEOUT",
    "SERVER_ERROR",
    "SSE_DONE",
    "UNSUPPORTED_VALUE",
    "ChatRequest",
    "Conversation",
    "OpenAIError",
    "ResponseStream",
    "ResponsesRequest",
    "Turn",
    "chat_chunk",
    "chat_completion",
    "chat_usage",
    "error_body",
    "model_object",
    "parse_chat_request",
    "parse_json",
    "parse_responses_request",
    "response_object",
    "response_usage",
    "sse",
]

# Error `type`s.
INVALID_REQUEST_ERROR: Final = "invalid_request_error"
SERVER_ERROR: Final = "server_error"
RATE_LIMIT_ERROR: Final = "requests"
# Error `code`s.
INVALID_API_KEY: Final = "invalid_api_key"
MISSING_REQUIRED_PARAMETER: Final = "missing_required_parameter"
INVALID_VALUE: Final = "invalid_value"
INVALID_TYPE: Final = "invalid_type"
MODEL_NOT_FOUND: Final = "model_not_found"
RATE_LIMIT_EXCEEDED: Final = "rate_limit_exceeded"
REQUEST_TOO_LARGE: Final = "request_too_large"
UNSUPPORTED_VALUE: Final = "unsupported_value"
RUN_TIMEOUT: Final = "timeout"
RUN_ABORTED: Final = "aborted"

SSE_DONE: Final = b"data: [DONE]\n\n"

Role = Literal["system", "user", "assistant"]


class OpenAIError(Exception):
    """A request failed; `body()` is OpenAI's error JSON and `status` its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST_ERROR,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        """Return `{"error": {...}}`."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str,
    *,
    type: str = INVALID_REQUEST_ERROR,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """Return OpenAI's error object; `param` and `code` are null when they do not apply."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def sse(payload: Any, event: str | None = None) -> bytes:
    """Return one Server-Sent Event holding `payload` as JSON on a single `data:` line."""
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return data if event is None else b"event: " + event.encode() + b"\n" + data


# -- requests ---------------------------------------------------------------------------


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
