"""The traffic a simulated city offers: a pure, seeded function of the network and a spec.

What it models, per the issue: every NVR holds a large backfill backlog (footage the cloud
never got) and some cameras keep a continuous archive copy, which together saturate the
links; some NVRs are under buffer pressure (their oldest footage is evicted at a deadline);
operators watch cameras live; alarms add short event clips; handhelds come online with clips
and leave; and bursts of evidence requests ask for footage with a deadline.

Evidence requests in a run go to distinct villages, and are spread so that the villages'
bottleneck rates never add up past a township's or county's capacity: the "physical ideal"
(bytes / bottleneck capacity left to evidence) is then a true lower bound for each request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from controller.scheduler.sim.presets import HANDHELD, Site
from controller.scheduler.topology import Topology

SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Knobs of the offered traffic (defaults: the benchmark's city afternoon, compressed)."""

    duration_s: float = 600.0
    archive_fraction: float = 0.05  # cameras whose policy keeps a continuous cloud copy
    backfill_hours: tuple[float, float] = (6.0, 48.0)  # of every camera, per NVR
    pressure_fraction: float = 0.1  # NVRs whose oldest footage is about to be evicted
    live_sessions: int = 150
    alarms_per_minute: float = 20.0
    handheld_online: float = 0.2  # share of handhelds online at any moment
    # Bursts: (share of the run elapsed, number of requests); requests ask for footage whose
    # ideal time-to-cloud is between these bounds (seconds).
    evidence_bursts: tuple[tuple[float, int], ...] = ((0.1, 20), (0.4, 20))
    evidence_ideal_s: tuple[float, float] = (20.0, 150.0)
    evidence_deadline_s: float = 1800.0


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous run of footage of one class arriving on a device at `at_s`."""

    at_s: float
    device_id: str
    traffic_class: int
    size_bytes: int
    footage_start_us: int
    deadline_s: float = 0.0  # eviction or requested deadline, seconds after start; 0: none
    request_id: int = -1  # evidence request it belongs to


@dataclass(frozen=True, slots=True)
class Stream:
    """Footage produced continuously between `start_s` and `end_s` (archive or live)."""

    device_id: str
    traffic_class: int
    bps: int
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Presence:
    """When a handheld is connected (it reports demand only while online)."""

    device_id: str
    online_s: float
    offline_s: float


@dataclass(frozen=True, slots=True)
class Workload:
    start_us: int
    spec: WorkloadSpec
    chunks: tuple[Chunk, ...]  # sorted by at_s
    streams: tuple[Stream, ...]
    presence: tuple[Presence, ...]


def _bottleneck(topology: Topology, device_id: str) -> tuple[float, list[int]]:
    ct = topology.compiled
    d = ct.device_index[device_id]
    path = ct.paths[ct.device_link[d]]
    cap = min(min(ct.capacity[i] - ct.reserve_cap[i] for i in path), ct.device_max[d])
    return float(cap), list(path)


def generate(
    topology: Topology, sites: tuple[Site, ...], spec: WorkloadSpec, start_us: int, seed: int = 11
) -> Workload:
    """The traffic of one run; the same inputs always give the same workload."""
    rng = random.Random(seed)  # noqa: S311 -- a repeatable synthetic city, not a secret
    nvrs = [s for s in sites if s.kind != HANDHELD]
    handhelds = [s for s in sites if s.kind == HANDHELD]
    chunks: list[Chunk] = []
    streams: list[Stream] = []
    end = spec.duration_s
    for s in nvrs:
        hours = rng.uniform(*spec.backfill_hours)
        size = int(sum(s.camera_bps) * hours * 3600 / 8)
        oldest = start_us - int((hours + 24) * HOUR_US)
        if rng.random() < spec.pressure_fraction:
            # The oldest footage goes first when the buffer fills: some minutes' worth of
            # this device's bottleneck must be sent before it is evicted.
            bottleneck, _ = _bottleneck(topology, s.device_id)
            due_s = rng.uniform(60.0, min(900.0, end))
            at_risk = int(bottleneck * due_s * rng.uniform(0.05, 0.3) / 8)
            chunks.append(Chunk(0.0, s.device_id, 5, at_risk, oldest - HOUR_US, due_s))
        chunks.append(Chunk(0.0, s.device_id, 5, size, oldest))
        for bps in s.camera_bps:
            if rng.random() < spec.archive_fraction:
                streams.append(Stream(s.device_id, 4, bps, 0.0, end))
    for _ in range(spec.live_sessions):
        s = rng.choice(nvrs)
        t0 = rng.uniform(-end / 2, end)
        streams.append(
            Stream(s.device_id, 2, rng.choice(s.camera_bps), max(0.0, t0), min(end, t0 + 300))
        )
    for _ in range(int(spec.alarms_per_minute * end / 60)):
        s = rng.choice(nvrs)
        at = rng.uniform(0, end)
        clip = int(rng.choice(s.camera_bps) * 30 / 8)
        chunks.append(Chunk(at, s.device_id, 3, clip, start_us + int(at * SECOND_US)))
    presence: list[Presence] = []
    for h in handhelds:
        if rng.random() < spec.handheld_online * 2:
            on = rng.uniform(-end / 2, end)
            presence.append(Presence(h.device_id, max(0.0, on), on + end / 2))
            clip = int(h.camera_bps[0] * rng.uniform(60, 600) / 8)
            chunks.append(Chunk(max(0.0, on), h.device_id, 3, clip, start_us - HOUR_US))
    used_links: dict[int, float] = {}
    ct = topology.compiled
    candidates = nvrs[:]
    rng.shuffle(candidates)
    taken_villages: set[int] = set()
    rid = 0
    for share, count in spec.evidence_bursts:
        at = round(share * end, 3)
        placed = 0
        while candidates and placed < count:
            s = candidates.pop()
            cap, path = _bottleneck(topology, s.device_id)
            if path[0] in taken_villages or any(
                used_links.get(i, 0.0) + cap > ct.capacity[i] - ct.reserve_cap[i] for i in path[1:]
            ):
                continue
            taken_villages.add(path[0])
            for i in path[1:]:
                used_links[i] = used_links.get(i, 0.0) + cap
            size = int(cap * rng.uniform(*spec.evidence_ideal_s) / 8)
            footage = start_us - int(rng.uniform(1, 24) * HOUR_US)
            chunks.append(
                Chunk(at, s.device_id, 1, size, footage, at + spec.evidence_deadline_s, rid)
            )
            rid += 1
            placed += 1
    chunks.sort(key=lambda c: (c.at_s, c.device_id, c.traffic_class))
    return Workload(start_us, spec, tuple(chunks), tuple(streams), tuple(presence))
