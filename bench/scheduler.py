"""Upload scheduler benchmark: the Longnan city, Vigil's planner against a naive uploader.

    python -m bench.scheduler --quick      # 5 simulated minutes (< 60 s), the CI setting
    python -m bench.scheduler              # 30 simulated minutes

Both runs see the same generated traffic (backfill and archive saturating the links, live
viewing, alarms, handhelds coming and going, two bursts of 20 evidence requests). Measures:
replan time of the real `plan()` at city scale (goal <= 200 ms on one core), utilisation of
saturated links (goal >= 95%, never above 100%), evidence time-to-cloud / physical ideal
(goal <= 1.1), and the same ratio for the naive per-device fair-share FIFO uploader.
Replan time is CPU time of the planner (time.process_time): the planner is single-threaded
and CPU time is not inflated by other work on a shared machine.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from controller.scheduler.sim.presets import preset
from controller.scheduler.sim.report import compare
from controller.scheduler.sim.workload import WorkloadSpec

# 02:00 local (UTC+8) on 2026-01-01: night, so windowed backfill may run.
START_US = (1_767_225_600 + 2 * 3600 - 8 * 3600) * 1_000_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 simulated minutes instead of 30")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    seconds = 300.0 if args.quick else 1800.0
    wall = time.perf_counter()
    city = preset("longnan")
    built = time.perf_counter() - wall
    result = compare(
        city.topology,
        city.sites,
        WorkloadSpec(duration_s=seconds),
        start_us=START_US,
        timer=time.process_time,
        seed=args.seed,
    )
    vigil, naive = result.vigil, result.naive
    assert naive is not None
    print(f"scale: {json.dumps(result.scale)}; topology built in {built * 1000:.0f} ms")
    print("vigil:", json.dumps(vigil))
    print("naive:", json.dumps(naive))
    line = {
        "replan_ms": vigil["replan_ms_p50"],
        "replan_ms_p95": vigil["replan_ms_p95"],
        "replan_ms_max": vigil["replan_ms_max"],
        "utilisation_min": vigil["utilisation_min"],
        "utilisation_max": vigil["utilisation_max"],
        "saturated_links": vigil["saturated_links"],
        "evidence_ttc_ratio": vigil["evidence_ttc_ratio_mean"],
        "evidence_ttc_ratio_p95": vigil["evidence_ttc_ratio_p95"],
        "evidence_unfinished": vigil["evidence_unfinished"],
        "deadline_misses": vigil["deadline_misses"],
        "evicted_segments": vigil["evicted_segments"],
        "jain_min": vigil["jain_min"],
        "naive_evidence_ttc_ratio": naive["evidence_ttc_ratio_mean"],
        "naive_evidence_unfinished": naive["evidence_unfinished"],
        "naive_evicted_segments": naive["evicted_segments"],
        "naive_utilisation_min": naive["utilisation_min"],
        "sim_seconds": seconds,
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
