"""What `clawgate chat` prints for a run's `chat` events (pure)."""

from __future__ import annotations

from typing import Any

from clawgate.cli.chat_stream import ReplyPrinter


def message(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": 1}


def test_v4_deltas_print_their_new_text_and_the_final_ends_the_line() -> None:
    printer = ReplyPrinter()
    assert printer.feed({"state": "delta", "deltaText": "one", "message": message("one")}) == "one"
    assert (
        printer.feed({"state": "delta", "deltaText": " two", "message": message("one two")})
        == " two"
    )
    assert printer.feed({"state": "final", "message": message("one two three")}) == " three\n"
    assert printer.ended is not None and printer.ended.text == "one two three"


def test_v3_deltas_print_the_growth_of_the_whole_text() -> None:
    printer = ReplyPrinter()
    assert printer.feed({"state": "delta", "message": message("one")}) == "one"
    assert printer.feed({"state": "delta", "message": message("one two")}) == " two"


def test_a_rewritten_text_starts_a_new_line() -> None:
    printer = ReplyPrinter()
    printer.feed({"state": "delta", "deltaText": "draft"})
    assert printer.feed({"state": "delta", "deltaText": "better", "replace": True}) == "\nbetter"
    assert printer.feed({"state": "final", "message": message("better")}) == "\n"


def test_an_error_ends_the_run_with_its_message() -> None:
    printer = ReplyPrinter()
    assert printer.feed({"state": "error", "errorMessage": "backend down"}) == ""
    assert printer.ended is not None
    assert (printer.ended.state, printer.ended.error) == ("error", "backend down")
