"""Replan cost at fleet scale: incremental replans against the whole-city plan they replace.

    python -m bench.scheduler_fleet --quick     # 10,000 agents, 12 rounds (< 60 s)
    python -m bench.scheduler_fleet             # 10,000 agents, 40 rounds

The scheduler's own state (`LeaseDesk`, as `SchedulerService` drives it), no gRPC: N agents
on the default topology (each its own 20 Mbit/s uplink under the city root, as bench.agents
runs the controller) report one 1 MB backfill segment each and hold a lease. Then, each round,
`--reports` random agents finish their lease and report a new segment (what bench.agents'
replan phase does at 1,000 reports a second, coalesced into one replan per 0.2-0.5 s), and
the desk replans: `begin_replan`, `compute` (incremental: only the parts whose inputs changed),
`end_replan` (leases issued). Measured as CPU time of this process (time.process_time: not
inflated by other work on a shared machine), per round:

- `replan_ms`: the whole replan as the scheduler thread runs it (incremental);
- `whole_city_ms` (the baseline, same round, same inputs): what the replan's computation cost
  before, one `plan` of the whole city and `stabilise` over every device;
- `full_recompute_ms`: the incremental planner from nothing (no memo), for reference (the
  first three rounds).

The last line printed is one JSON object; `ratio` = whole_city_ms / compute_ms (medians).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from dataclasses import replace

from controller.jobs.tracker import DeviceReport
from controller.scheduler.desk import LeaseDesk
from controller.scheduler.hysteresis import stabilise
from controller.scheduler.model import ClassBacklog, DeviceDemand, PendingSegment, TrafficClass
from controller.scheduler.options import SchedulerOptions, default_topology
from controller.scheduler.plan import plan
from controller.scheduler.state import PlanInputs, compute
from protos.vigil.v1 import agent_control_pb2

S = 1_000_000
SEGMENT = 1_000_000
NOW = 1_767_225_600 * S


def _demand(device: str, seq: int, now_us: int) -> DeviceDemand:
    start = now_us - 60 * S
    seg = PendingSegment(f"{device}-s{seq}", f"{device}-c", TrafficClass.BACKFILL, start, SEGMENT)
    return DeviceDemand(device, {TrafficClass.BACKFILL: ClassBacklog(SEGMENT, 1, start)}, (seg,))


def _report(desk: LeaseDesk, device: str, seq: int, now_us: int) -> None:
    desk.inventory(device, agent_control_pb2.Inventory(), _demand(device, seq, now_us),
                   DeviceReport())  # fmt: skip


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _whole_city(inputs: PlanInputs, now_us: int) -> float:
    t = time.process_time()
    fresh = plan(inputs.topology, inputs.demands, now_us, version=2, config=inputs.config)
    stabilise(inputs.previous, fresh, inputs.topology, inputs.hysteresis)
    return time.process_time() - t


def run(agents: int, rounds: int, reports: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    ids = itertools.count()
    options = SchedulerOptions(default_link_bps=20_000_000)
    desk = LeaseDesk(default_topology(options.root_bps), options, lambda: f"L{next(ids)}")
    devices = [f"agent{i:05d}" for i in range(agents)]
    now = NOW
    for d in devices:
        _report(desk, d, 0, now)
        desk.connect(d, now)
    t = time.process_time()
    desk.replan(now)
    first_s = time.process_time() - t
    seq = dict.fromkeys(devices, 0)
    replan_s: list[float] = []
    compute_s: list[float] = []
    whole_s: list[float] = []
    full_s: list[float] = []
    issued: list[int] = []
    for _ in range(rounds):
        now += S // 2
        for d in rng.sample(devices, reports):
            lease = desk.book.active(d)
            if lease is not None:
                done = [s.segment_id for s in lease.segments]
                desk.finish(d, agent_control_pb2.LeaseReport(lease_id=lease.lease_id,
                                                             done_segment_ids=done))  # fmt: skip
            seq[d] += 1
            _report(desk, d, seq[d], now)
        t0 = time.process_time()
        inputs = desk.begin_replan()
        t1 = time.process_time()
        merged, changed = compute(inputs, now)
        t2 = time.process_time()
        touched = desk.end_replan(inputs, merged, changed, now)
        t3 = time.process_time()
        replan_s.append(t3 - t0)
        compute_s.append(t2 - t1)
        issued.append(len(touched))
        whole_s.append(_whole_city(inputs, now))
        if len(full_s) < 3:  # the slow reference: three rounds are enough
            t4 = time.process_time()
            compute(replace(inputs, previous=replace(inputs.previous, memo=None)), now)
            full_s.append(time.process_time() - t4)
    med = statistics.median
    return {
        "agents": agents,
        "reports_per_replan": reports,
        "rounds": rounds,
        "first_replan_ms": _ms(first_s),
        "replan_ms_p50": _ms(med(replan_s)),
        "replan_ms_max": _ms(max(replan_s)),
        "compute_ms_p50": _ms(med(compute_s)),
        "whole_city_ms_p50": _ms(med(whole_s)),
        "full_recompute_ms_p50": _ms(med(full_s)),
        "ratio": round(med(whole_s) / med(compute_s), 1),
        "leases_issued_per_replan": med(issued),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 rounds instead of 40")
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--reports", type=int, default=300, help="reports per replan")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    wall = time.perf_counter()
    result = run(args.agents, 12 if args.quick else 40, args.reports, args.seed)
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
