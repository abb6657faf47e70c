"""The OpenAI-compatible backend: `POST {base_url}/chat/completions` with `stream: true`.

Works with anything speaking that API (llama.cpp server, Ollama, vLLM, OpenAI). Failures
before the first token (connect errors, HTTP 429 and 5xx) are retried with exponential
backoff; once text has streamed a failure ends the run, since a retry would repeat it.
The api key lives in memory only and is scrubbed from any text shown to a user.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp

from ..config import OpenAISection
from .backend import (
    UNTRUSTED_BEGIN,
    UNTRUSTED_NOTE,
    BackendError,
    BackendItem,
    BackendRequest,
    Completion,
    ErrorKind,
    TextDelta,
)
from .sse import SseDecoder

__all__ = ["OpenAIBackend"]

logger = logging.getLogger(__name__)

_SERVER_TEXT_MAX: Final = 200
_RETRY_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})


class _Retry(Exception):
    """A failure before the first token that a later attempt may not meet."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(error.message)
        self.error = error


class OpenAIBackend:
    """Stream chat completions from an OpenAI-compatible server."""

    name = "openai"

    def __init__(
        self, settings: OpenAISection, api_key: str | None, *, key_missing: str | None = None
    ) -> None:
        self._settings = settings
        self._api_key = api_key
        # Set when the config names an env var that is not set: every run says so.
        self._key_missing = key_missing
        self._url = settings.base_url.rstrip("/") + "/chat/completions"

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text[:_SERVER_TEXT_MAX]

    def _body(self, request: BackendRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if self._settings.system_prompt:
            messages.append({"role": "system", "content": self._settings.system_prompt})
        texts = [request.message, *(m.text for m in request.history)]
        if any(UNTRUSTED_BEGIN in text for text in texts):
            # A channel conversation: say what its delimiter means (channels/routing.py).
            messages.append({"role": "system", "content": UNTRUSTED_NOTE})
        messages += [{"role": m.role, "content": m.text} for m in request.history]
        messages.append({"role": "user", "content": request.message})
        body: dict[str, Any] = {"model": self._settings.model, "messages": messages, "stream": True}
        if self._settings.temperature is not None:
            body["temperature"] = self._settings.temperature
        return body

    async def stream(self, request: BackendRequest) -> AsyncIterator[BackendItem]:
        """Yield the streamed completion, retrying failures that come before any text."""
        if self._key_missing is not None:
            raise BackendError(self._key_missing)
        settings = self._settings
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
        )
        body = self._body(request)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            attempt = 0
            while True:
                try:
                    async for item in self._attempt(http, body, headers):
                        yield item
                    return
                except _Retry as retry:
                    if attempt >= settings.max_retries:
                        raise retry.error from None
                    delay_s = settings.retry_backoff_ms / 1000 * 2**attempt
                    attempt += 1
                    logger.info(
                        "run %s: %s; retry %d in %.1f s",
                        request.run_id,
                        retry.error.message,
                        attempt,
                        delay_s,
                    )
                    await asyncio.sleep(delay_s)

    async def _attempt(
        self, http: aiohttp.ClientSession, body: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[BackendItem]:
        streamed = False
        try:
            async with http.post(self._url, json=body, headers=headers) as response:
                if response.status != 200:
                    raise await self._http_error(response)
                decoder = SseDecoder()
                finish: str | None = None
                usage: dict[str, Any] | None = None
                done = False
                chunks = response.content.iter_any()
                while not done:
                    chunk = await anext(chunks, None)
                    # At the end, the last event may lack its closing blank line.
                    events = decoder.close() if chunk is None else decoder.feed(chunk)
                    for data in events:
                        if data.strip() == "[DONE]":
                            done = True
                            break
                        text, finish_now, usage_now = self._parse_chunk(data)
                        finish = finish_now or finish
                        usage = usage_now or usage
                        if text:
                            streamed = True
                            yield TextDelta(text)
                    if chunk is None:
                        break
                if not done and finish is None:
                    raise BackendError(
                        "the model server ended the stream before the answer was complete"
                    )
                yield Completion(finish, usage)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            if streamed:
                raise BackendError(
                    "the model server dropped the connection in the middle of the answer"
                ) from exc
            raise _Retry(BackendError("the model server closed the connection")) from exc
        except aiohttp.ServerTimeoutError as exc:
            # A ClientConnectionError too, but it is a timeout for the user (errorKind).
            message = f"the model server sent nothing for {self._settings.read_timeout_s:g} s"
            error = BackendError(message, ErrorKind.TIMEOUT)
            if streamed:
                raise error from exc
            raise _Retry(error) from exc
        except aiohttp.ClientConnectionError as exc:
            if streamed:
                raise BackendError("lost the connection to the model server mid-answer") from exc
            raise _Retry(
                BackendError(f"cannot reach the model server at {self._settings.base_url}")
            ) from exc
        except TimeoutError as exc:
            message = (
                f"the model server sent nothing for {self._settings.read_timeout_s:g} s"
                if streamed
                else f"the model server at {self._settings.base_url} did not answer in time"
            )
            error = BackendError(message, ErrorKind.TIMEOUT)
            if streamed:
                raise error from exc
            raise _Retry(error) from exc

    def _parse_chunk(self, data: str) -> tuple[str, str | None, dict[str, Any] | None]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise BackendError("the model server sent a chunk that is not JSON") from None
        if not isinstance(chunk, dict):
            raise BackendError("the model server sent a chunk that is not a JSON object")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise BackendError(f"the model server failed: {self._scrub(str(message))}")
        text = ""
        finish = None
        choices = chunk.get("choices") or []
        if choices and isinstance(choices[0], dict):
            delta = choices[0].get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            text = content if isinstance(content, str) else ""
            finish = choices[0].get("finish_reason")
        usage = chunk.get("usage")
        return (
            text,
            finish if isinstance(finish, str) else None,
            usage if isinstance(usage, dict) else None,
        )

    async def _http_error(self, response: aiohttp.ClientResponse) -> Exception:
        status = response.status
        try:
            text = await response.text()
            detail = json.loads(text).get("error", {}).get("message", "")
        except (ValueError, AttributeError, aiohttp.ClientError):
            detail = ""
        detail = self._scrub(str(detail))
        if status in (401, 403):
            where = self._settings.api_key_env or "api_key_env"
            return BackendError(
                f"the model server refused the api key (HTTP {status}); check the key in ${where}",
                ErrorKind.UNKNOWN,
            )
        if status == 404:
            return BackendError(
                f"the model server answered 404; check base_url and model"
                f" ({self._settings.model}){': ' + detail if detail else ''}"
            )
        if status == 429:
            error = BackendError(
                "the model server is rate limiting requests (HTTP 429); try again later",
                ErrorKind.RATE_LIMIT,
            )
            return _Retry(error)
        kind = ErrorKind.CONTEXT_LENGTH if "context" in detail.lower() else ErrorKind.UNKNOWN
        error = BackendError(
            f"the model server failed with HTTP {status}{': ' + detail if detail else ''}", kind
        )
        return _Retry(error) if status in _RETRY_STATUSES else error
