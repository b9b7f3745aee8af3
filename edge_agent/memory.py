"""The C allocator's side of the agent's memory (glibc malloc, through ctypes).

Why: most of the agent's memory is allocated by FFmpeg, in C, from eight or more capture
threads. glibc gives each thread that contends for the allocator an arena of its own (up to
8 per core), and memory freed in an arena mostly stays in the process. Measured with 8
emulated 1080p cameras (docs/benchmarks.md, "Agent capture"): the image-health decode of
one keyframe a minute per camera (~12 MB of decoder state and frames) left each capture
thread's arena holding it, 172 MB in all against 119 MB without image health. Two arenas
and giving freed memory back after each such decode brought it to 117 MB.

Elsewhere than glibc (musl, macOS) these are no-ops that say so (False): nothing breaks,
memory is only less tight.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc malloc.h
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap the allocator's arenas (call before the capture threads start); True if done."""
    libc = _libc()
    if libc is None:
        log.debug("not glibc: allocator arenas left as they are")
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Give the allocator's free pages back to the system (after a rare large allocation,
    such as one decoded keyframe); True if any was released. Costs about a millisecond."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
