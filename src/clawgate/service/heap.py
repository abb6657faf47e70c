"""Give the heap pages that start-up freed back to the operating system (glibc only).

Start-up allocates and frees a lot (imports, config and schema building, migrations):
glibc keeps the freed pages mapped for reuse, so an idle gateway would stay resident at
its start-up peak. One `malloc_trim(0)` once start-up is over returns them (~1 MiB of an
idle gateway's RSS, issue 12 point 7). Other C libraries (musl, macOS) have no such
call and nothing is done there.
"""

from __future__ import annotations

import sys

__all__ = ["release_free_heap"]


def release_free_heap() -> bool:
    """Ask the C allocator to return its free pages to the OS; return whether it was asked."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # loaded here: only this one call needs it

    try:
        libc = ctypes.CDLL(None)  # the symbols already in the process, libc's among them
    except OSError:
        return False
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True
