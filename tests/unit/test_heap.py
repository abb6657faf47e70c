"""`release_free_heap` asks glibc to trim its heap and does nothing where it cannot."""

from __future__ import annotations

import platform

import pytest

from clawgate.service.heap import release_free_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_heap_is_trimmed_under_glibc() -> None:
    assert release_free_heap() is True
