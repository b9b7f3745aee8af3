"""The crash test's victim: commits segments of two cameras into a buffer until killed.

    python tests/integration/buffer_crash_writer.py ROOT QUOTA_BYTES SEED

Exercises everything that writes: commits of random sizes (small quota, so most commits
evict), mark_uploaded, holds and releases, gaps, eviction reporting. After each commit returns
it prints `C <segment_id> <sha256>` and flushes: those are the acknowledged segments, which
must survive any kill -9 (present, or recorded as evicted).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from pathlib import Path

from edge_agent.clock import SystemClock
from edge_agent.model import Gap
from edge_agent.store import SegmentBuffer

CAMERAS = ("camA", "camB")
SEGMENT_US = 2_000_000


def main(argv: list[str]) -> int:
    root, quota, seed = Path(argv[1]), int(argv[2]), int(argv[3])
    logging.basicConfig(level=logging.ERROR)  # evictions are expected here, not news
    rnd = random.Random(seed)
    buf = SegmentBuffer.open(root, quota, SystemClock())
    print("READY", flush=True)
    while True:
        cam = rnd.choice(CAMERAS)
        start = time.time_ns() // 1000
        path = buf.temp_path(cam)
        with path.open("wb") as f:  # the segmenter writes without fsync; commit syncs
            f.write(rnd.randbytes(rnd.randint(1_000, 60_000)))
        info = buf.commit(cam, path, start, SEGMENT_US)
        print(f"C {info.segment_id} {info.sha256}", flush=True)
        roll = rnd.random()
        if roll < 0.30:
            for seg in buf.unsent(rnd.randint(1, 3)):
                buf.mark_uploaded(seg.segment_id)
        elif roll < 0.36:
            buf.hold(cam, start - 3 * SEGMENT_US, start + SEGMENT_US, f"case-{rnd.randint(0, 99)}")
        elif roll < 0.46:
            holds = buf.holds()
            if holds:
                buf.release(rnd.choice(holds).hold_id)
        elif roll < 0.50:
            buf.record_gap(Gap(cam, start - 500_000, start - 1, "stall"))
        elif roll < 0.56:
            buf.mark_evictions_reported([r.record_id for r in buf.evictions(limit=20)])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
