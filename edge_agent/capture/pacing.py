"""When a live camera's reader pauses: read in bursts once it has caught up (pure).

Why: a reader woken for every frame (25 a second per camera) pays a thread wake-up, a
context switch and cold caches for each. With the reader pausing a quarter of a second
whenever it had caught up, the agent's CPU for eight 1080p cameras fell by about a third
(0.59 -> 0.41 % of a core per camera; a bare remux reading the same way saves about as much:
docs/benchmarks.md, "Agent capture", sixth look). While it pauses
the camera's packets wait in the kernel's TCP receive buffer (a quarter second of a 4 Mbit/s
camera is 125 KB), so nothing is lost and every packet is still handled, in order.

What it costs: a segment is committed, and health sees a frame, up to one pause later. So
there is no pause
* while a live viewer watches the camera (glass-to-glass latency is a goal of its own);
* over UDP (RTP datagrams that do not fit the socket's receive buffer are dropped);
* while packets are still queued (the reader is behind: the last packet came at once).
FFmpeg's socket timeout, which notices a stalled camera, only runs while reading, so a pause
never looks like a stall.
"""

from __future__ import annotations

CAUGHT_UP_US = 5_000  # a packet that took this long to come was waited for: nothing queued


def pause_after(
    previous_us: int | None, arrival_us: int, pause_s: float, *, watched: bool, udp: bool
) -> float:
    """Seconds to pause reading after the packet that arrived at `arrival_us` (the one before
    it at `previous_us`): `pause_s` if the reader waited for it, else 0."""
    if pause_s <= 0 or watched or udp or previous_us is None:
        return 0.0
    return pause_s if arrival_us - previous_us >= CAUGHT_UP_US else 0.0
