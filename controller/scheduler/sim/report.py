"""Runs of the simulation turned into the numbers the issue asks for.

- link utilisation on saturated links: bits carried / capacity over the time each link was
  a bottleneck in the plan in force (links that were one for at least two replan periods);
  and the peak utilisation of any link in any interval (must never exceed 1);
- evidence time-to-cloud / physical ideal, per request (a request still unfinished at the
  end counts with the time it has waited so far, a lower bound, once that exceeds its ideal);
- Jain fairness between devices sharing a bottleneck, deadline misses, evictions;
- replan time (wall clock of the plan function alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.scheduler.plan import plan
from controller.scheduler.sim.metrics import SimResult
from controller.scheduler.sim.naive import naive_plan
from controller.scheduler.sim.presets import Site
from controller.scheduler.sim.simulate import SimConfig, Simulation
from controller.scheduler.sim.workload import WorkloadSpec, generate
from controller.scheduler.topology import Topology


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(result: SimResult, topology: Topology, period_s: float) -> dict[str, Any]:
    """The report of one run as plain JSON-able data."""
    ct = topology.compiled
    busy = [
        i for i, tm in result.busy_time.items() if tm >= 2 * period_s and result.busy_capacity[i]
    ]
    util = {ct.link_ids[i]: result.busy_bits[i] / result.busy_capacity[i] for i in busy}
    end = result.duration_s
    ratios: list[float] = []
    late = unfinished = 0
    for e in result.evidence.values():
        finished = e.done_s is not None
        until = e.done_s if e.done_s is not None else end
        took = until - e.arrived_s
        if not finished:
            unfinished += 1
        if until > e.deadline_s:
            late += 1
        # An unfinished request counts only once it has waited longer than its ideal: its
        # wait so far is then a lower bound worth reporting; before that it says nothing.
        if e.ideal_s > 0 and (finished or took > e.ideal_s):
            ratios.append(took / e.ideal_s)
    worst = min(util, key=util.__getitem__) if util else None
    return {
        "replans": len(result.replan_ms),
        "replan_ms_p50": round(percentile(result.replan_ms, 0.5), 2),
        "replan_ms_p95": round(percentile(result.replan_ms, 0.95), 2),
        "replan_ms_max": round(max(result.replan_ms, default=0.0), 2),
        "saturated_links": len(util),
        "utilisation_min": round(min(util.values(), default=0.0), 4),
        "utilisation_min_link": worst,
        "utilisation_mean": round(sum(util.values()) / len(util), 4) if util else 0.0,
        "utilisation_max": round(result.peak_utilisation, 4),
        "evidence_requests": len(result.evidence),
        "evidence_unfinished": unfinished,
        "evidence_ttc_ratio_mean": round(sum(ratios) / len(ratios), 3) if ratios else 0.0,
        "evidence_ttc_ratio_p95": round(percentile(ratios, 0.95), 3),
        "evidence_ttc_ratio_max": round(max(ratios, default=0.0), 3),
        "deadline_misses": late,
        "evicted_segments": result.evicted_chunks,
        "evicted_bytes": int(result.evicted_bytes),
        "jain_mean": round(sum(result.jain) / len(result.jain), 4) if result.jain else 1.0,
        "jain_min": round(min(result.jain, default=1.0), 4),
        "sent_gbytes": round(result.sent_bytes / 1e9, 2),
        "mean_gbit_s": round(result.sent_bytes * 8 / 1e9 / end, 3),
    }


@dataclass(frozen=True, slots=True)
class Comparison:
    vigil: dict[str, Any]
    naive: dict[str, Any] | None
    scale: dict[str, Any]


def compare(
    topology: Topology,
    sites: tuple[Site, ...],
    spec: WorkloadSpec,
    *,
    start_us: int,
    timer: Callable[[], float],
    period_s: float = 10.0,
    seed: int = 11,
    baseline: bool = True,
) -> Comparison:
    """Vigil's planner and (optionally) the naive baseline over the same generated traffic."""
    work = generate(topology, sites, spec, start_us, seed)
    runs: dict[str, dict[str, Any]] = {}
    for name, fn, fifo in (("vigil", plan, False), ("naive", naive_plan, True)):
        if name == "naive" and not baseline:
            continue
        sim = Simulation(topology, work, fn, timer, SimConfig(period_s=period_s, fifo=fifo))
        runs[name] = summarise(sim.run(), topology, period_s)
    scale = {
        "links": len(topology.links),
        "devices": len(topology.devices),
        "nvrs": sum(1 for s in sites if s.kind != "handheld"),
        "handhelds": sum(1 for s in sites if s.kind == "handheld"),
        "cameras": sum(len(s.camera_bps) for s in sites if s.kind != "handheld"),
        "sim_seconds": spec.duration_s,
        "period_s": period_s,
    }
    return Comparison(runs["vigil"], runs.get("naive"), scale)
