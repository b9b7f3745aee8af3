"""Garbage-collector thresholds for a controller process holding thousands of connections.

A controller with 10,000 lease streams keeps millions of long-lived Python objects (TLS
channels' state, asyncio tasks, mailboxes, the plan). CPython's default thresholds (700,
10, 10) collect the young generation every 700 container allocations and the older ones
every tenth time, so a replan, which allocates a plan's worth of objects (one per device),
pays for repeated scans of objects that never die. Measured on a 10,000-device replan with a
1M-object heap: 0.12-0.22 s of CPU with the defaults, 0.13-0.14 s with these thresholds.

Called once by the process entry point (`serve`, and the benchmark's controller process),
never at import: it is a setting of the whole process.
"""

from __future__ import annotations

import gc

YOUNG = 10_000  # container allocations between young collections (CPython: 700)
MIDDLE = 50  # young collections per middle one (10)
OLD = 100  # middle collections per full one (10; CPython also waits for 25 % new objects)


def tune_gc() -> None:
    """Collect less often; what exists at start (modules, configuration) is never scanned
    again (`gc.freeze`)."""
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
