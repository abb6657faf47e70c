"""OpenAI's error JSON without sockets."""

from __future__ import annotations

from clawgate.protocol.openai_errors import error_body


def test_error_body_is_openais_shape_with_nulls() -> None:
    assert error_body("bad") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}
    }
