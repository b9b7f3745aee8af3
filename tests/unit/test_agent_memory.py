"""The agent gives freed C memory back (edge_agent/memory.py says why): glibc keeps what is
freed below a live allocation; `release_free_memory` returns it to the system."""

from __future__ import annotations

import ctypes

import psutil

from edge_agent.memory import limit_arenas, release_free_memory

CHUNK = 64 * 1024  # below glibc's mmap threshold: served from the heap, as FFmpeg's are
CHUNKS = 640  # 40 MiB, half of it freed


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def test_freed_heap_memory_below_a_live_allocation_goes_back_to_the_system() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    chunks = [libc.malloc(CHUNK) for _ in range(CHUNKS)]
    for c in chunks:
        ctypes.memset(c, 1, CHUNK)  # touched: resident
    freed, live = chunks[1::2], chunks[::2]  # holes between live chunks: free() cannot trim
    try:
        for c in freed:
            libc.free(c)
        kept = _rss()
        assert release_free_memory()
        assert kept - _rss() > len(freed) * CHUNK // 2
    finally:
        for c in live:
            libc.free(c)


def test_arenas_can_be_limited() -> None:
    assert limit_arenas(8)  # glibc (Debian): the call is accepted (8: this test process's own)
