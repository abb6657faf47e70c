"""Reading IRC lines from a stream (channels/irc.py `read_message`): long lines, EOF."""

from __future__ import annotations

import asyncio

import pytest

from clawgate.channels.irc import LineTooLong, read_message


def stream(data: bytes, limit: int = 64) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_lines_are_read_one_at_a_time() -> None:
    reader = stream(b"PING :a\r\n:s 001 me :hi\r\n")
    first, second = await read_message(reader), await read_message(reader)
    assert first is not None and first.command == "PING"
    assert second is not None and second.command == "001"


async def test_a_line_over_the_limit_is_dropped_whole_and_the_next_one_read() -> None:
    reader = stream(b"PRIVMSG me :" + b"x" * 1000 + b"\r\nPING :after\r\n")
    with pytest.raises(LineTooLong):
        await read_message(reader)
    after = await read_message(reader)
    assert after is not None and after.params == ("after",)


async def test_an_empty_line_reads_as_none() -> None:
    assert await read_message(stream(b"\r\n")) is None


async def test_the_end_of_the_stream_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await read_message(stream(b"PARTIAL"))
